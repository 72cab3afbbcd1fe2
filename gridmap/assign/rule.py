"""THE point-in-polygon rule: what one point's answer is, and the tie-break when several grids cover it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Assignment:
    """Where one point landed."""

    grid_code: str | None
    community_code: str | None = None
    street_code: str | None = None
    ambiguous: bool = False
    candidates: tuple[str, ...] = ()
    nearest_code: str | None = None
    nearest_distance_m: float | None = None

    def incident_fields(self, edition: str | None = None) -> dict:
        """Return the incident columns this answer sets when a case is first located (its original grid too)."""
        fields = {
            "grid_code": self.grid_code,
            "original_grid_code": self.grid_code,
            "community_code": self.community_code,
            "street_code": self.street_code,
            "ambiguous": bool(self.ambiguous),
        }
        if edition is not None:
            fields.update(edition=edition, original_edition=edition)
        return fields

    def to_dict(self) -> dict:
        """Return the JSON shape used by the CLI and the API."""
        return {
            "grid_code": self.grid_code,
            "community_code": self.community_code,
            "street_code": self.street_code,
            "ambiguous": self.ambiguous,
            "candidates": list(self.candidates),
            "nearest_code": self.nearest_code,
            "nearest_distance_m": None if self.nearest_distance_m is None else round(self.nearest_distance_m, 2),
        }


def choose(codes: Iterable[str]) -> tuple[str | None, bool, tuple[str, ...]]:
    """Apply the tie-break to the codes of the grids covering a point: (winner, ambiguous, all candidates)."""
    candidates = tuple(sorted(set(codes)))
    if not candidates:
        return None, False, ()
    return candidates[0], len(candidates) > 1, candidates
