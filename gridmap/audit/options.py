"""What an audit looks for and with which thresholds."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, fields

from gridmap import clock
from gridmap.errors import InvalidInput

FINDING_KINDS = ("gaps", "overlaps", "outside_parent", "invalid", "slivers", "codes")
# What `--fail-on` accepts: the finding lists, grids outside the households range, and incident problems.
FAIL_KINDS = (*FINDING_KINDS, "balance", "unassigned", "ambiguous")
CLOSED_STATUSES = ("closed", "rejected")  # as Store.incident_points(only_open=True) counts them
DEDICATED_KIND = "专属"  # a dedicated grid (a park, a school): the households guideline does not apply
LEVEL_ORDER = ("district", "street", "community", "grid")
# GB/T 2260 + GB/T 30428.1 lengths; a grid may also carry a 20-digit CJ/T 349 community-service grid code.
CODE_LENGTHS = {"district": (6,), "street": (9,), "community": (12,), "grid": (15, 20)}


@dataclass(frozen=True)
class AuditOptions:
    """The thresholds of one audit; every one has a default from the guideline or from common sense."""

    area_tolerance_m2: float = 1.0
    sliver_compactness: float = 0.1
    sliver_area_m2: float = 100.0
    households_min: int = 300
    households_max: int = 500
    recent_days: int = 90
    as_of: dt.datetime | None = None

    def __post_init__(self) -> None:
        if not self.area_tolerance_m2 >= 0:
            raise InvalidInput("the area tolerance must be a number of square metres ≥ 0")
        if not 0 <= self.sliver_compactness <= 1:
            raise InvalidInput("the sliver compactness threshold must lie between 0 and 1")
        if not self.sliver_area_m2 >= 0:
            raise InvalidInput("the sliver area must be a number of square metres ≥ 0")
        if not 0 <= self.households_min <= self.households_max:
            raise InvalidInput(
                f"the households range must satisfy 0 ≤ min ≤ max, not {self.households_min}–{self.households_max}"
            )
        if self.recent_days < 1:
            raise InvalidInput("recent_days must be at least 1")

    @classmethod
    def from_values(cls, **values) -> AuditOptions:
        """Build options from keyword values, ignoring None (unset CLI/query options); unknown names are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInput(f"unknown audit option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**{k: v for k, v in values.items() if v is not None})

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        values = asdict(self)
        values["as_of"] = clock.iso(self.as_of) if self.as_of else None
        return values
