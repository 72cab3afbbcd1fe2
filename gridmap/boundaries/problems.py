"""What an import found: refusals, warnings and repairs, each naming the feature, its code and its name.

An import validates the whole file before it refuses, so a user fixes everything in one round: the refusal lists
every problem, grouped by reason with counts, and `--report` writes them all to a CSV file.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from gridmap.errors import InvalidInput

SEVERITIES = ("refused", "warning", "repaired")
# Reason keys and how a person reads them; the keys go into the CSV report, the titles head each group.
REASONS = {
    # refusals
    "no_geometry": "no geometry",
    "not_polygon": "not a polygon",
    "bad_ring": "a ring that cannot be read",
    "curve": "a curve that cannot be read",
    "invalid_geometry": "invalid geometry",
    "bad_coordinates": "coordinates that are not WGS84 degrees in China",
    "too_large": "larger than any district",
    "empty_code": "no code",
    "bad_code": "a code that cannot be stored",
    "duplicate_code": "duplicate code",
    "code_exists": "code already in the edition",
    "bad_name": "a name that cannot be stored",
    "no_parent": "no parent code",
    "parent_at_top": "a parent given to a top-level area",
    "unknown_parent": "parent not in the edition",
    "far_outside_parent": "mostly outside its parent",
    "bad_value": "a value that is not allowed",
    # warnings
    "encoding": "attribute encoding",
    "truncated": "an incomplete export",
    "area_mismatch": "area differs from Shape_Area",
    "gap": "gap",
    "overlap": "overlap",
    "outside_parent": "reaches outside its parent",
    "code_prefix": "code does not start with the parent's code",
    "created_parent": "parent created from its children",
    "parent_name": "created parent's name",
    # repairs
    "repaired": "repaired geometry",
}
# Above this many refusals, the message lists the first few of each reason; the report has them all.
SHOWN_PER_REASON = 50


@dataclass(frozen=True)
class Problem:
    """One refusal, warning or repair; `feature` is the 1-based feature number in the file, when there is one."""

    severity: str
    reason: str
    message: str
    feature: int | None = None
    code: str | None = None
    name: str | None = None

    def where(self) -> str:
        """Return "feature 77 (code 120104001001077 百合第77网格)", or whatever of that is known."""
        label = " ".join(part for part in (self.code, self.name if self.name != self.code else None) if part)
        if self.feature is None:
            return label
        return f"feature {self.feature}" + (f" (code {label})" if label else "")

    def __str__(self) -> str:
        where = self.where()
        return f"{where}: {self.message}" if where else self.message


def refused(reason: str, message: str, **where) -> Problem:
    """Return a refusal."""
    return Problem("refused", reason, message, **where)


def warning(reason: str, message: str, **where) -> Problem:
    """Return a warning."""
    return Problem("warning", reason, message, **where)


def grouped_lines(problems: Sequence[Problem], *, limit: int | None = None) -> list[str]:
    """Describe problems grouped by reason, largest group first, each group headed by its count."""
    counts = Counter(p.reason for p in problems)
    lines: list[str] = []
    for reason, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"{REASONS.get(reason, reason)}: {count}")
        members = [p for p in problems if p.reason == reason]
        shown = members if limit is None else members[:limit]
        lines += [f"  {p}" for p in shown]
        if len(members) > len(shown):
            lines.append(f"  … and {len(members) - len(shown)} more (--report FILE writes every one)")
    return lines


class ImportRefused(InvalidInput):
    """A boundary file with refusals: every one is listed, nothing is written."""

    def __init__(self, filename: str, problems: Sequence[Problem]) -> None:
        self.filename = filename
        self.problems = list(problems)
        self.refusals = [p for p in self.problems if p.severity == "refused"]
        super().__init__("\n".join(self.lines(limit=SHOWN_PER_REASON)))

    def lines(self, *, limit: int | None = None) -> list[str]:
        """Describe the refusals: one line for one, else a head line and the refusals grouped by reason."""
        if len(self.refusals) == 1:
            return [f"{self.filename}: {self.refusals[0]}"]
        features = len({p.feature for p in self.refusals})
        head = f"{self.filename}: {len(self.refusals)} refusals in {features} features; nothing written:"
        return [head, *grouped_lines(self.refusals, limit=limit)]


def write_report(path: Path, problems: Iterable[Problem]) -> int:
    """Write problems to a CSV file (UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese)."""
    rows = [asdict(p) for p in problems]
    columns = ["severity", "reason", "feature", "code", "name", "message"]
    try:
        with Path(path).open("w", newline="", encoding="utf-8-sig") as out:
            writer = csv.DictWriter(out, fieldnames=columns)
            writer.writeheader()
            writer.writerows({c: row[c] for c in columns} for row in rows)
    except OSError as exc:
        raise InvalidInput(f"cannot write the report {path}: {exc.strerror or exc}") from exc
    return len(rows)


def counts_line(problems: Sequence[Problem]) -> str:
    """Return "2 refusals, 14 warnings, 1 repair" for a set of problems."""
    counts = Counter(p.severity for p in problems)
    words = {"refused": ("refusal", "refusals"), "warning": ("warning", "warnings"), "repaired": ("repair", "repairs")}
    return ", ".join(f"{counts[s]} {words[s][counts[s] != 1]}" for s in SEVERITIES if counts[s]) or "no problems"
