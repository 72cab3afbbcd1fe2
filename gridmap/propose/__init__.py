"""Redivision proposals: from "these grids are out of range" to a balanced draft plan in one step.

`propose_plan` works on plain values (GeoDataFrames of grids and communities, building dicts, shapely lines)
and knows nothing of Flask or the database; `propose` at the bottom is the thin wrapper the CLI and the web
call: it reads the edition and the register, proposes, and writes the result into a draft.

The rules: grids are unions of building cells (Voronoi cells of the buildings, clipped to the community and cut
along barrier lines), each one polygon inside its community, the community tiled exactly; an estate stays in
one grid unless it alone exceeds the maximum (then it is divided by buildings); a building above the maximum
becomes a grid of its own and is reported. With `keep_good` (the default) grids already in range, whole and
compact (as round as the edition's median Polsby–Popper) stay byte for byte as they are and only the rest, with
the fewest neighbours needed, are redrawn; a grid in range but below the median is kept too unless one straight
re-cut with a grid that may change lifts one of them to the median (`rounding`). A
redrawn grid that holds most of an old grid's households, which are most of its own, keeps that grid's code
(and continues its version), so residents keep their grid; other new grids get fresh codes that no edition
ever used. See `region` for one community, `partition` for how households are balanced,
and `cells` and `power` for how outlines are drawn.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

from gridmap.errors import InvalidInput, Unprocessable
from gridmap.propose import choice
from gridmap.propose.redraw import NewGrid
from gridmap.propose.region import CommunityPlan, plan_community

METHODS = ("repair", "rebuild")
MAX_HOUSEHOLDS = 1_000_000  # per grid: far above any real grid, below anything that overflows
MAX_SEED = 2**32 - 1
DEFAULT_COMPACT_MIN = 0.25  # Polsby–Popper below this is not "compact": such a grid is redrawn too


@dataclass(frozen=True)
class ProposeOptions:
    """What a proposal must respect, and how it searches."""

    households_min: int = 300
    households_max: int = 500
    target_households: float | None = None
    keep_good: bool = True
    seed: int = 0
    method: str = "repair"
    compact_min: float = DEFAULT_COMPACT_MIN
    max_added: int = 8  # good neighbours one region may take in before it gives up
    shift: bool = True  # with keep_good, first move one straight edge between a grid out of range and a neighbour
    rounding: bool = True  # with keep_good, last re-cut pairs below the edition's median to lift one to it (`rounding`)

    def __post_init__(self) -> None:
        # Each number may be fine alone and the set still unusable: 422, not 400 (web/openapi's rule).
        if not 0 < self.households_min <= self.households_max:
            raise Unprocessable(
                f"the households range must satisfy 0 < min ≤ max, not {self.households_min}–{self.households_max}"
            )
        if self.target_households is not None and not (
            self.households_min <= self.target_households <= self.households_max
        ):
            raise Unprocessable(
                f"the target {self.target_households:g} must lie in the range "
                f"{self.households_min}–{self.households_max}"
            )
        if self.method not in METHODS:
            raise InvalidInput(f"method must be one of {', '.join(METHODS)}, not {self.method!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise InvalidInput(f"seed must be a whole number ≥ 0, not {self.seed!r}")

    @property
    def target(self) -> float:
        """The households a grid aims at (default: the middle of the range)."""
        if self.target_households is not None:
            return float(self.target_households)
        return (self.households_min + self.households_max) / 2


@dataclass
class Proposal:
    """A proposed division of some communities of an edition."""

    communities: list[CommunityPlan]
    options: ProposeOptions
    seconds: float = 0.0
    figures: dict = field(default_factory=dict)
    kept_geometries: dict = field(default_factory=dict)  # code → geometry of the scope's grids before
    buildings: Sequence[dict] = ()

    @property
    def new_grids(self) -> list[NewGrid]:
        """Every grid drawn anew (continuing an old code or not)."""
        return [g for c in self.communities for g in c.grids]

    @property
    def exceptions(self) -> list[dict]:
        """Everything the proposal could not bring into line, with the reason."""
        return [{**e, "community": c.code} for c in self.communities for e in c.exceptions]


def propose_plan(
    grids,
    communities,
    buildings: Sequence[dict],
    *,
    scope: Sequence[str],
    options: ProposeOptions,
    barriers: Sequence = (),
) -> Proposal:
    """Propose new grids for the communities in `scope` (codes); grids and communities are GeoDataFrames of one
    edition, buildings dicts with code, lon, lat, households, population, estate and optionally a footprint."""
    from gridmap import assign

    started = time.perf_counter()
    chosen = set(scope)
    missing = sorted(chosen - set(communities["code"]))
    if missing:
        raise InvalidInput(f"no community {missing[0]!r} in the edition")
    # Only the scope's grids are indexed: a building anywhere else is of no concern here.
    in_scope = grids[grids["parent_code"].isin(chosen)]
    index = assign.index_from_frames(in_scope, communities)
    located = _old_grids(index, buildings)
    lons = np.array([b["lon"] for b in buildings], dtype=float)
    lats = np.array([b["lat"] for b in buildings], dtype=float)
    community_of = np.array(
        [index.community_codes[index.position[g]] if g is not None else None for g in located], dtype=object
    )
    loose = np.flatnonzero(community_of == None)  # noqa: E711 - an object array compares element-wise
    community_rows = {row["code"]: row for row in communities.to_dict("records")}
    for code in scope:
        if len(loose):
            # Buildings in no grid (a gap) but inside the community belong to it too.
            inside = shapely.contains_xy(community_rows[code]["geometry"], lons[loose], lats[loose])
            community_of[loose[inside]] = code
    grid_rows = in_scope.to_dict("records")
    by_community: dict[str, list[dict]] = {}
    for row in grid_rows:
        by_community.setdefault(row["parent_code"], []).append(row)
    # The bar a round grid is measured by: the edition's median, the same whichever communities are in scope.
    round_bar = choice.median_compactness(grids.geometry)
    plans = []
    for code in scope:
        community = community_rows[code]
        inside = [
            {**buildings[i], "grid": located[i], "position": int(i)} for i in np.flatnonzero(community_of == code)
        ]
        plan = plan_community(
            {"code": code, "name": community["name"], "geometry": community["geometry"]},
            by_community.get(code, []),
            inside,
            options=options,
            barriers=barriers,
            round_bar=round_bar,
        )
        for grid in plan.grids:
            grid.buildings = [inside[i]["position"] for i in grid.buildings]
        plan.buildings = [b["position"] for b in inside]
        plans.append(plan)
    proposal = Proposal(communities=plans, options=options, seconds=time.perf_counter() - started)
    proposal.kept_geometries = {row["code"]: row["geometry"] for row in grid_rows}
    proposal.buildings = buildings
    return proposal


def _old_grids(index, buildings: Sequence[dict]) -> list[str | None]:
    if not buildings:
        return []
    result = index.locate_many([b["lon"] for b in buildings], [b["lat"] for b in buildings], nearest=False)
    return result.grid_codes()


# ---- codes and names -------------------------------------------------------------------------------------------
def number_grids(proposal: Proposal, next_codes: Callable[[str, int], list[str]], community_names: dict) -> None:
    """Give each new grid its code (fresh codes numbered west→east, north→south) and name."""
    for plan in proposal.communities:
        fresh = [g for g in plan.grids if g.continues is None]
        codes = next_codes(plan.code, len(fresh)) if fresh else []
        for grid, code in zip(_reading_order(fresh), codes, strict=True):
            grid.code = code
            short = str(community_names.get(plan.code, plan.name)).removesuffix("社区")
            grid.name = f"{short}第{int(code[-3:]) if code[-3:].isdigit() else code}网格"
        for grid in plan.grids:
            if grid.continues is not None:
                grid.code = grid.continues
    settle(proposal)


def settle(proposal: Proposal) -> None:
    """Count every new grid's buildings by THE rule now that codes decide ties on shared edges, and list the
    grids left outside the range (a building exactly on an edge goes to the lowest code, like any point)."""
    from gridmap import assign

    low, high = proposal.options.households_min, proposal.options.households_max
    for plan in proposal.communities:
        plan.exceptions = [e for e in plan.exceptions if e["kind"] != "out_of_range"]
        if not plan.grids:
            continue
        codes = [*plan.kept, *(g.code for g in plan.grids)]
        geometries = [*(proposal.kept_geometries[c] for c in plan.kept), *(g.geometry for g in plan.grids)]
        index = assign.GridIndex.build(codes, geometries)
        mine = [proposal.buildings[i] for i in plan.buildings]
        located = index.locate_many([b["lon"] for b in mine], [b["lat"] for b in mine], nearest=False).grid_codes()
        by_grid: dict[str | None, list[int]] = {}
        for position, code in zip(plan.buildings, located, strict=True):
            by_grid.setdefault(code, []).append(position)
        for grid in plan.grids:
            grid.buildings = sorted(by_grid.get(grid.code, []))
            rows = [proposal.buildings[i] for i in grid.buildings]
            grid.households = sum(b["households"] for b in rows)
            people = [b.get("population") for b in rows]
            grid.population = None if any(v is None for v in people) else sum(people)
            if grid.huge is None and not low <= grid.households <= high:
                plan.exceptions.append(
                    {
                        "kind": "out_of_range",
                        "grid": grid.code,
                        "households": grid.households,
                        "detail": f"grid {grid.code} has {grid.households} households and could not be brought into "
                        f"{low}–{high} with its neighbours",
                    }
                )


def _reading_order(grids: list[NewGrid]) -> list[NewGrid]:
    """Order grids north→south in bands, west→east within a band (the numbering rule of the demo)."""
    if not grids:
        return []
    centres = [g.geometry.representative_point() for g in grids]
    rows = max(1, round(math.sqrt(len(grids))))
    ys = [c.y for c in centres]
    top, height = max(ys), (max(ys) - min(ys)) or 1.0
    keys = [(min(rows - 1, int((top - c.y) / height * rows)), c.x) for c in centres]
    return [g for _, g in sorted(zip(keys, grids, strict=True), key=lambda item: item[0])]


def sequential_codes(existing: Sequence[str]) -> Callable[[str, int], list[str]]:
    """Return a `next_codes` that continues after the highest code in `existing` (for use without a store)."""
    used = set(existing)

    def next_codes(community: str, count: int) -> list[str]:
        numbers = [int(c[len(community) :]) for c in used if c.startswith(community) and c[len(community) :].isdigit()]
        start = max(numbers, default=0) + 1
        codes = [f"{community}{n:03d}" for n in range(start, start + count)]
        used.update(codes)
        return codes

    return next_codes


# ---- the store-backed front: what the CLI and the web call ----------------------------------------------
def scope_communities(communities, *, community: str | None, street: str | None, whole: bool) -> list[str]:
    """Return the community codes a request names: one community, the communities of a street, or all."""
    chosen = [bool(community), bool(street), bool(whole)]
    if sum(chosen) != 1:
        raise InvalidInput("name exactly one of: a community, a street, or all")
    codes = list(communities["code"])
    if community:
        if community not in codes:
            raise Unprocessable(f"no community {community!r} in the edition")
        return [community]
    if street:
        found = [
            c for c, parent in zip(communities["code"], communities["parent_code"], strict=True) if parent == street
        ]
        if not found:
            raise Unprocessable(f"no street {street!r} with communities in the edition")
        return sorted(found)
    return sorted(codes)


def read_barriers(path) -> list:
    """Read road or river lines from a GeoJSON, Shapefile or GeoPackage file, as lon/lat LineStrings."""
    from pathlib import Path

    import geopandas as gpd

    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{path}: no such file")
    try:
        frame = gpd.read_file(path)
    except Exception as exc:  # pyogrio raises its own types for unreadable files
        raise InvalidInput(f"{path.name}: cannot read it as a GIS file ({type(exc).__name__})") from None
    if frame.crs is not None and not frame.crs.equals("EPSG:4326"):
        frame = frame.to_crs("EPSG:4326")
    lines = []
    for number, geometry in enumerate(frame.geometry, start=1):
        if geometry is None or geometry.is_empty:
            continue
        if geometry.geom_type not in ("LineString", "MultiLineString", "Polygon", "MultiPolygon"):
            raise InvalidInput(f"{path.name}: feature {number} is a {geometry.geom_type}; barriers are lines")
        if geometry.geom_type in ("Polygon", "MultiPolygon"):
            geometry = geometry.boundary  # a river drawn as an area: its banks are the lines
        from gridmap import crs as crs_rules

        crs_rules.check_bounds(*geometry.bounds, where=f"{path.name}: feature {number}")
        lines += [g for g in shapely.get_parts(geometry) if g.length > 0]
    if not lines:
        raise InvalidInput(f"{path.name}: has no lines")
    return lines


def parse_barriers(value) -> list:
    """Turn GeoJSON lines (a geometry, a Feature or a FeatureCollection) into lon/lat LineStrings."""
    from collections.abc import Mapping

    from shapely.geometry import shape

    from gridmap import crs as crs_rules

    if not isinstance(value, Mapping) or "type" not in value:
        raise InvalidInput("barriers must be GeoJSON: a LineString, MultiLineString, Feature or FeatureCollection")
    if value["type"] == "FeatureCollection":
        geometries = [f.get("geometry") if isinstance(f, Mapping) else None for f in value.get("features") or []]
    elif value["type"] == "Feature":
        geometries = [value.get("geometry")]
    else:
        geometries = [value]
    lines = []
    for number, geometry in enumerate(geometries, start=1):
        try:
            line = shape(geometry)
        except Exception:  # shapely raises several types for malformed GeoJSON
            raise InvalidInput(f"barrier {number} is not valid GeoJSON") from None
        if line.geom_type not in ("LineString", "MultiLineString") or line.is_empty:
            raise InvalidInput(f"barrier {number} is a {line.geom_type}; barriers are lines")
        if line.has_z:
            raise InvalidInput(f"barrier {number}: give its positions as [lon, lat], without a height")
        crs_rules.check_bounds(*line.bounds, where=f"barrier {number}")
        lines += [g for g in shapely.get_parts(line) if g.length > 0]
    return lines


def request_options(body, settings) -> tuple[dict, ProposeOptions, list]:
    """Read a JSON request: ({community | street | whole}, options, barriers), every value checked."""
    from collections.abc import Mapping

    if not isinstance(body, Mapping):
        raise InvalidInput("send a JSON object")

    def whole_number(key: str, default, *, low: int, high: int):
        value = body.get(key)
        if value is None:  # left out or null: the default
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value != int(value)
            or not low <= value <= high
        ):
            raise InvalidInput(f"{key} must be a whole number from {low} to {high}, not {str(value)[:30]}")
        return int(value)

    def text(key: str) -> str | None:
        value = body.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str) or len(value) > 32:
            raise InvalidInput(f"{key} must be an area code")
        return value

    for key in ("keep_good", "rounding", "all"):
        if key in body and not isinstance(body[key], bool):
            raise InvalidInput(f"{key} must be true or false")
    target = body.get("target")
    if target is not None and (
        isinstance(target, bool) or not isinstance(target, int | float) or not math.isfinite(target)
    ):
        raise InvalidInput(f"target must be a number, not {str(target)[:30]}")
    scope = {"community": text("community"), "street": text("street"), "whole": bool(body.get("all", False))}
    options = ProposeOptions(
        households_min=whole_number("min", settings.households_min, low=1, high=MAX_HOUSEHOLDS),
        households_max=whole_number("max", settings.households_max, low=1, high=MAX_HOUSEHOLDS),
        target_households=float(target) if target is not None else None,
        keep_good=body.get("keep_good", True),
        rounding=body.get("rounding", True),
        seed=whole_number("seed", 0, low=0, high=MAX_SEED),
        method=body.get("method", "repair"),
    )
    barriers = parse_barriers(body["barriers"]) if body.get("barriers") is not None else []
    return scope, options, barriers


def propose(
    store,
    *,
    into: str,
    community: str | None = None,
    street: str | None = None,
    whole: bool = False,
    options: ProposeOptions | None = None,
    barriers: Sequence = (),
) -> dict:
    """Propose grids for a community, a street or the whole edition and write them into the draft `into`
    (created as a copy of the current edition when it does not exist); return the report."""
    from gridmap import drafts
    from gridmap.errors import Conflict, NotFound
    from gridmap.propose.figures import proposal_figures
    from gridmap.store import AreaRecord

    options = options or ProposeOptions()
    existing = store.find_edition(into)
    if existing is not None and existing.status != "draft":
        raise Conflict(f"edition {into!r} is {existing.status}; propose into a draft (or a new name)")
    if existing is None:
        current = store.current_edition()
        if current is None:
            raise NotFound("there is no current edition to start the draft from")
        base = current.name
    else:
        base = into
    grids, communities = store.areas(base, "grid"), store.areas(base, "community")
    scope = scope_communities(communities, community=community, street=street, whole=whole)
    buildings = store.buildings()
    if not buildings:
        raise Unprocessable("the household register is empty: load buildings first (gridmap load-buildings FILE)")
    proposal = propose_plan(grids, communities, buildings, scope=scope, options=options, barriers=barriers)
    names = dict(zip(communities["code"], communities["name"], strict=True))
    number_grids(proposal, lambda code, n: drafts.next_codes(store, code, n), names)
    if existing is None:
        drafts.create_draft(store, into, source=base)
    versions = store.area_versions(into)
    old = {row["code"]: row for row in grids.to_dict("records")}
    remove = {code: versions[code] for plan in proposal.communities for code in plan.redrawn}
    add = []
    for plan in proposal.communities:
        for grid in plan.grids:
            before = old.get(grid.continues) if grid.continues else None
            add.append(
                AreaRecord(
                    code=grid.code,
                    name=before["name"] if before else grid.name,
                    level="grid",
                    parent_code=plan.code,
                    geometry=grid.geometry,
                    kind=before["kind"] if before else "综合",
                    households=grid.households,
                    population=grid.population,
                    staff=before["staff"] if before else None,
                    version=versions[grid.continues] + 1 if before else 1,
                )
            )
    if remove or add:
        store.replace_areas(into, remove=remove, add=add)
    after = store.areas(into, "grid")
    proposal.figures = proposal_figures(
        grids, after, communities, buildings, store.incident_points(), scope=scope, options=options
    )
    return report(proposal, edition=into, base=base)


def report(proposal: Proposal, *, edition: str, base: str) -> dict:
    """Return the JSON report of a proposal: per community what stayed, what was redrawn, the exceptions."""
    return {
        "edition": edition,
        "from": base,
        "options": {
            "min": proposal.options.households_min,
            "max": proposal.options.households_max,
            "target": proposal.options.target,
            "keep_good": proposal.options.keep_good,
            "rounding": proposal.options.keep_good and proposal.options.rounding,
            "seed": proposal.options.seed,
            "method": proposal.options.method,
        },
        "communities": [
            {
                "code": plan.code,
                "name": plan.name,
                "kept": len(plan.kept),
                "redrawn": plan.redrawn,
                "added_neighbours": plan.added,
                "new": sorted(g.code for g in plan.grids if g.continues is None),
                "continued": sorted(g.code for g in plan.grids if g.continues is not None),
                "note": plan.note,
            }
            for plan in proposal.communities
        ],
        "exceptions": [_exception(e, proposal) for e in proposal.exceptions],
        "figures": proposal.figures,
        "seconds": round(proposal.seconds, 3),
    }


def _exception(exception: dict, proposal: Proposal) -> dict:
    out = {k: v for k, v in exception.items() if k != "sources"}
    if exception.get("building"):
        grid = next((g for g in proposal.new_grids if g.huge == exception["building"]), None)
        out["grid"] = grid.code if grid else None
    return out


def summary_lines(result: dict) -> list[str]:
    """Describe a proposal's report in a few lines of text."""
    f = result["figures"]
    o = result["options"]
    lines = [
        f"proposal written into draft {result['edition']!r} (from {result['from']!r}), households "
        f"{o['min']}–{o['max']} (target {o['target']:g}), keep-good {'on' if o['keep_good'] else 'off'}, "
        f"rounding {'on' if o.get('rounding') else 'off'}, "
        f"seed {o['seed']}, method {o['method']}",
    ]
    redrawn = sum(len(c["redrawn"]) for c in result["communities"])
    new = sum(len(c["new"]) for c in result["communities"])
    continued = sum(len(c["continued"]) for c in result["communities"])
    kept = sum(c["kept"] for c in result["communities"])
    lines.append(
        f"{len(result['communities'])} communities: {kept} grids kept as they are, {redrawn} redrawn into "
        f"{continued + new} ({continued} keep their code, {new} new)"
    )
    if f:
        lines += [
            f"grids outside {o['min']}–{o['max']}: {f['out_of_range']['before']} → {f['out_of_range']['after']} "
            f"(of {f['grids']['before']} → {f['grids']['after']} grids)",
            f"households per grid CV: {f['cv']['before']} → {f['cv']['after']}",
            f"Polsby–Popper median {f['polsby_popper']['median_before']} → {f['polsby_popper']['median_after']}, "
            f"minimum {f['polsby_popper']['min_before']} → {f['polsby_popper']['min_after']}",
            f"grids in more than one piece: {f['multipart']['after']}",
            f"households changing grid: {f['households_moving']} of {f['households']} ({f['households_moving_pct']} %)",
            f"open cases changing grid: {f['open_cases_moving']}",
        ]
    lines.append(f"proposed in {result['seconds']:.2f} s")
    for exception in result["exceptions"]:
        lines.append(f"  exception in {exception['community']}: {exception['detail']}")
    for community in result["communities"]:
        if community["note"]:
            lines.append(f"  {community['code']}: {community['note']}")
    return lines
