"""Cutting an audit or a comparison to a scoped user's area (a supervisor's communities, a grid worker's grids).

District-wide roles see every finding and figure. A scoped user sees the findings that touch an area of
theirs, the balance rows (households, population, staff, open and recent cases) of their own areas only,
totals recomputed over those, and only the incidents in their scope; an incident in no grid belongs to
nobody's patch, so only district-wide roles see it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gridmap.audit.balance import spread_stats
from gridmap.audit.options import FINDING_KINDS

__all__ = ["area_scope", "cut_audit", "cut_comparison", "scoped_incidents"]


def area_scope(user, frames: Iterable) -> set[str] | None:
    """Return the codes of the areas in the user's area (theirs and everything under them); None: all areas."""
    if user is None or user.sees_all_areas:
        return None
    parent: dict[str, str | None] = {}
    for frame in frames:
        parent.update(zip(frame["code"], frame["parent_code"], strict=True))
    mine = set(user.areas)
    inside: set[str] = set()
    for code in parent:
        seen, current = set(), code
        while current and current not in seen:
            if current in mine:
                inside.add(code)
                break
            seen.add(current)
            current = parent.get(current)
    return inside


def scoped_incidents(incidents: Sequence[dict], user) -> list[dict]:
    """Keep the incidents in the user's scope by their stored codes, as the case rules do (all for None)."""
    if user is None or user.sees_all_areas:
        return list(incidents)
    return [
        i
        for i in incidents
        if user.covers(
            grid_code=i.get("grid_code"), community_code=i.get("community_code"), street_code=i.get("street_code")
        )
    ]


def _totals(grids: list[dict]) -> dict:
    counted = [r["households"] for r in grids if r.get("range_applies", True) and r["households"] is not None]
    has_staff = any(r.get("staff") is not None for r in grids)
    totals = {
        "grids": len(grids),
        "households": sum(r["households"] or 0 for r in grids),
        "open_cases": sum(r["open_cases"] for r in grids),
    }
    if grids and "population" in grids[0]:
        totals.update(
            population=sum(r["population"] or 0 for r in grids),
            recent_cases=sum(r["recent_cases"] for r in grids),
            staff=sum(r["staff"] or 0 for r in grids) if has_staff else None,
            households_unknown=sum(r["households"] is None for r in grids),
        )
    return {**totals, **spread_stats(counted)}


def _cut_balance(balance: dict, scope: set[str]) -> dict:
    grids = [r for r in balance["grids"] if r["code"] in scope]
    cut = {**balance, "grids": grids, "totals": {**balance["totals"], **_totals(grids)}}
    if "communities" in balance:
        cut["communities"] = [c for c in balance["communities"] if c["code"] in scope]
    if "outside_range" in balance:
        if isinstance(balance["outside_range"], list):
            cut["outside_range"] = [r for r in balance["outside_range"] if r["code"] in scope]
        else:
            cut["outside_range"] = sum(r["households_flag"] is not None for r in grids)
    return cut


def cut_audit(report: dict, scope: set[str] | None) -> dict:
    """Return the audit report as a user with this scope may see it (unchanged when the scope is None)."""
    if scope is None:
        return report
    cut = dict(report)
    for kind in FINDING_KINDS:
        cut[kind] = [f for f in report[kind] if any(code in scope for code in f["codes"])]
    cut["balance"] = _cut_balance(report["balance"], scope)
    ambiguous = report["incidents"]["ambiguous"]  # the incidents were cut to the user's before the audit
    cut["incidents"] = {"unassigned": [], "ambiguous": ambiguous}
    summary = dict(report["summary"])
    summary["findings"] = {kind: len(cut[kind]) for kind in FINDING_KINDS}
    summary["outside_range"] = len(cut["balance"]["outside_range"])
    summary["incidents"] = {
        **summary["incidents"],
        "unassigned": 0,
        "ambiguous": len(ambiguous),
    }
    summary["clean"] = not any(cut[kind] for kind in FINDING_KINDS)
    summary["scope"] = sorted(scope)
    cut["summary"] = summary
    return cut


def cut_comparison(report: dict, scope: set[str] | None) -> dict:
    """Return a comparison of two editions as a user with this scope may see it (scope: codes in either)."""
    if scope is None:
        return report
    grids = [g for g in report["grids"] if g["code"] in scope or any(s["code"] in scope for s in g["sources"])]
    retired = [r for r in report["retired"] if r["code"] in scope]
    moved = [m for m in report["cases"]["moved"] if m["from"] in scope or m["to"] in scope]
    moving = sum(s["households_estimated"] or 0 for g in grids for s in g["sources"] if s["code"] != g["code"])
    balance = dict(report["balance"])
    balance["a"] = _cut_balance(report["balance"]["a"], scope)
    balance["b"] = _cut_balance(report["balance"]["b"], scope)
    balance["communities"] = [c for c in report["balance"]["communities"] if c["code"] in scope]
    statuses = [g["status"] for g in grids]
    open_moving = sum(bool(m["open"]) for m in moved)
    summary = {
        **report["summary"],
        "grids": {"a": len(balance["a"]["grids"]), "b": len(balance["b"]["grids"])},
        "new": statuses.count("new"),
        "changed": statuses.count("changed"),
        "unchanged": statuses.count("unchanged"),
        "retired": len(retired),
        "households_moving": round(moving),
        "open_cases_moving": open_moving,
        "cases_moving": len(moved),
        "scope": sorted(scope),
    }
    return {
        **report,
        "grids": grids,
        "retired": retired,
        "households": {**report["households"], "moving": round(moving)},
        "cases": {"open_moving": open_moving, "moving": len(moved), "moved": moved},
        "balance": balance,
        "summary": summary,
    }
