"""Cases: reporting, the closed-loop workflow, permissions, listing and presenting. Around it: the working calendar
(`gridmap.workcalendar`), categories and their deadlines (`gridmap.categories`), what case fields may hold
(`gridmap.casefields`) and the indicators (`gridmap.casestats`); `stats` here applies the user's scope to them.

The loop (六步闭环): reported 上报 → registered 立案 → dispatched 派遣 → in_progress 处置 → resolved 反馈 →
closed 结案归档, plus reject 不予立案 (only before registration), rework 返工 (resolved → in_progress), extend 延期,
escalate/hand_back along grid → community → street → district, and supervise 督办. Every step is appended to
the incident's history (who, when, from, to, note); an illegal step is a Conflict (409).

Permissions: a grid_worker sees and acts on the cases of their own grids, a supervisor those of their
communities or streets; another area's case is NotFound (404) to them, so its existence is not revealed.
admin acts everywhere; planner and viewer only read. Reporters' names and phones are personal data: admin and
supervisor see them, every other role gets them masked (王*, 138****1234).

Deadlines run in working time: by default Monday–Friday 9:00–12:00 and 13:30–18:00 (7.5 working hours a
day), minus configured holidays, plus configured make-up working days (调休). A limit of N working days is N
times the working day's length of working time, so a case reported on Friday at 10:00 with one working day is
due on Monday at 10:00, and the traffic light measures hours and days alike.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gridmap import clock
from gridmap import crs as crs_rules

# gridmap.web reads case rules as `cases.X` (about 70 call sites: cases.SOURCES, cases.MAX_TITLE, cases.GROUPS,
# cases.load_categories(), ...), treating `cases` as its one front door; most of those names are used here anyway,
# and the three that are not (OPEN_STATUSES, SOURCE_LABELS, load_categories) are re-exported for it.
from gridmap.casefields import (
    FINISHED_STATUSES,
    MAX_ADDRESS,
    MAX_DESCRIPTION,
    MAX_NAME,
    MAX_NOTE,
    MAX_PHONE,
    MAX_TITLE,
    OPEN_STATUSES,  # noqa: F401 - re-exported, see above
    SOURCE_LABELS,  # noqa: F401 - re-exported, see above
    SOURCES,
    STATUSES,
    check_phone,
    clean_text,
    parse_coordinate,
)
from gridmap.casestats import GROUPS, STAT_FILTERS, check_filters, stats_of
from gridmap.categories import (
    category,
    category_names,
    deadline_for,
    load_categories,  # noqa: F401 - re-exported, see above
    needs_after_photo,
)
from gridmap.errors import Conflict, Forbidden, InvalidInput, NotFound, Unprocessable
from gridmap.workcalendar import (  # noqa: F401 - the calendar is part of what `cases` offers
    DEFAULT_CALENDAR,
    WorkingCalendar,
    _microseconds,
    calendar_from_settings,
    parse_dates,
    parse_periods,
    traffic_light,
    traffic_lights_many,
)

LEVELS = ("grid", "community", "street", "district")  # the escalation ladder, bottom first
ACTING_ROLES = ("admin", "supervisor", "grid_worker")
SEES_PERSONAL_DATA = ("admin", "supervisor")
_BOTH = ("admin", "supervisor")
_ALL = ACTING_ROLES
_WORKING = ("registered", "dispatched", "in_progress")


@dataclass(frozen=True)
class Step:
    """One workflow action: from which statuses, to which status (None: unchanged), by which roles."""

    sources: tuple[str, ...]
    target: str | None
    roles: tuple[str, ...]
    needs: tuple[str, ...] = ()  # request fields that must be given


ACTIONS: dict[str, Step] = {
    "register": Step(("reported",), "registered", _BOTH),
    "dispatch": Step(("registered", "dispatched"), "dispatched", _BOTH, ("assignee",)),
    "start": Step(("dispatched",), "in_progress", _ALL),
    "resolve": Step(("in_progress",), "resolved", _ALL),
    "close": Step(("resolved",), "closed", _BOTH),
    "reject": Step(("reported",), "rejected", _BOTH, ("note",)),
    "rework": Step(("resolved",), "in_progress", _BOTH, ("note",)),
    "extend": Step(_WORKING, None, _BOTH, ("note",)),
    "escalate": Step(("reported", *_WORKING), None, _ALL),
    "hand_back": Step(("reported", *_WORKING), None, _BOTH),
    "supervise": Step(("reported", *_WORKING, "resolved"), None, _BOTH),
}


# ---- personal data --------------------------------------------------------------------------------------
def mask_phone(phone: str | None) -> str | None:
    """Hide the middle of a phone number: 13812341234 → 138****1234."""
    if phone is None:
        return None
    text = re.sub(r"\s+", "", str(phone))
    if len(text) >= 8:
        return text[:3] + "*" * (len(text) - 7) + text[-4:]
    return "*" * max(len(text) - 2, 0) + text[-2:]


def mask_name(name: str | None) -> str | None:
    """Keep a name's first character only: 王小明 → 王**."""
    if not name:
        return name
    return name[0] + "*" * max(len(name) - 1, 1)


# ---- who sees what ----------------------------------------------------------------------------------------
def _covers(user, incident: Mapping) -> bool:
    return user.covers(
        grid_code=incident.get("grid_code"),
        community_code=incident.get("community_code"),
        street_code=incident.get("street_code"),
    )


def scope_of(user) -> list[str] | None:
    """Return the area codes a user's lists are limited to (None: the whole district)."""
    return None if user.sees_all_areas else list(user.areas)


def get_case(store, incident_id: int, *, user) -> dict:
    """Return one incident with its history, or NotFound when it is outside the user's scope."""
    incident = store.get_incident(incident_id)
    if not _covers(user, incident):
        raise NotFound(f"no incident {incident_id}")
    return incident


def allowed_actions(user, incident: Mapping) -> list[str]:
    """Return the actions this user may take on this incident now."""
    if user.role not in ACTING_ROLES or not _covers(user, incident):
        return []
    found = []
    for name, step in ACTIONS.items():
        if user.role in step.roles and incident["status"] in step.sources and not _blocked(name, user, incident):
            found.append(name)
    return found


def _blocked(action: str, user, incident: Mapping) -> str | None:
    """Say why an action that the status allows is still refused, or None."""
    level = incident.get("handling_level") or "grid"
    if action == "escalate":
        if level == LEVELS[-1]:
            return "the case is already handled by the district, the top of the ladder"
        if user.role == "grid_worker" and level != "grid":
            return f"the case is handled by the {level} now; a grid worker escalates only from the grid"
    if action == "hand_back" and level == LEVELS[0]:
        return "the case is handled by the grid already, the bottom of the ladder"
    return None


# ---- reporting --------------------------------------------------------------------------------------------
def report(store, *, user, **fields) -> dict:
    """Validate, geocode and assign a new case, set its deadline, store it; return the stored incident."""
    row = prepare_report(store, user=user, **fields)
    (incident_id,) = store.add_incidents([row], actor=user.name)
    return store.get_incident(incident_id)


def prepare_report(
    store,
    *,
    user,
    title,
    description=None,
    lon=None,
    lat=None,
    address=None,
    crs: str = "wgs84",
    category_code,
    reporter_name=None,
    reporter_phone=None,
    source="web",
    source_id: str | None = None,
    settings=None,
    calendar: WorkingCalendar | None = None,
    now: dt.datetime | None = None,
) -> dict:
    """Validate, geocode and assign a new case and set its deadline; return the row to store (nothing written).

    `source_id` is the case's id in the system it came from (an Open311 token); it must be unique."""
    from gridmap import assign, geocode

    if user.role not in ACTING_ROLES:
        raise Forbidden(f"a {user.role} may not report cases")
    now = (now or clock.now()).replace(microsecond=0)
    row = {
        "title": clean_text(title, "title", MAX_TITLE, required=True),
        "description": clean_text(description, "description", MAX_DESCRIPTION, multiline=True) or "",
        "address": clean_text(address, "address", MAX_ADDRESS),
        "reporter_name": clean_text(reporter_name, "reporter_name", MAX_NAME),
        "reporter_phone": check_phone(clean_text(reporter_phone, "reporter_phone", MAX_PHONE)),
    }
    source = source or "web"
    if not isinstance(source, str) or source not in SOURCES:
        raise InvalidInput(f"source must be one of {', '.join(SOURCES)}, not {str(source)[:30]!r}")
    if not isinstance(category_code, str):
        raise InvalidInput("category is required: a 4-digit code from GET /api/categories")
    kind = category(category_code)
    if not isinstance(crs, str):
        raise InvalidInput("crs must be text such as wgs84, cgcs2000, gcj02 or bd09")
    located = {}
    if lon is not None or lat is not None:
        if lon is None or lat is None:
            raise InvalidInput("give both lon and lat, or neither and an address")
        point_lon, point_lat = assign.to_wgs84_point(
            lon=parse_coordinate(lon, "lon"), lat=parse_coordinate(lat, "lat"), crs=crs_rules.canonical_crs(crs)
        )
    elif row["address"]:
        found = geocode.store_geocoder(store, settings).geocode(row["address"])
        if not found.found:
            why = f" ({found.note})" if found.note else ""
            raise Unprocessable(
                f"address {row['address']!r} was not found{why}; give lon and lat or pick the point on the map",
                extra={"geocode": found.to_dict()},
            )
        # A low-confidence point is still assigned, and flagged so a person checks it (geocode_review).
        located = found.incident_fields()
        point_lon, point_lat = located.pop("lon"), located.pop("lat")
    else:
        raise InvalidInput("give the place: lon and lat, or an address")
    index = assign.grid_index(store)
    where = index.locate(lon=point_lon, lat=point_lat)
    if where.grid_code is None:
        nearest = f" (nearest grid {where.nearest_code})" if where.nearest_code else ""
        raise Unprocessable(f"the point {point_lon:.6f}, {point_lat:.6f} lies in no grid of the district{nearest}")
    _check_reporting_area(user, where.incident_fields(index.edition))
    calendar = calendar or calendar_from_settings(settings)
    row.update(
        located,
        source=source,
        source_id=source_id,
        category_code=kind["code"],
        reported_at=now,
        lon=point_lon,
        lat=point_lat,
        **where.incident_fields(index.edition),
        status="reported",
        handling_level="grid",
        deadline=deadline_for(kind["code"], now, calendar),
    )
    return row


def _check_reporting_area(user, fields: Mapping) -> None:
    """Refuse a report outside the user's areas: a grid worker reports only inside their own grids."""
    codes = {k: fields.get(k) for k in ("grid_code", "community_code", "street_code")}
    if user.sees_all_areas or user.covers(**codes):
        return
    raise Forbidden(
        f"a {user.role} reports only inside their own areas ({', '.join(user.areas)}); "
        f"this point lies in grid {codes['grid_code']}"
    )


# ---- workflow -------------------------------------------------------------------------------------------
def _positive(value, name: str) -> float:
    number = parse_coordinate(value, name)
    if number <= 0 or number > 10_000:
        raise InvalidInput(f"{name} must be a positive number of working {name} up to 10000")
    return number


def act(store, incident_id: int, *, user, **step) -> dict:
    """Take one workflow step on a case; refuse what the role, the scope or the status does not allow."""
    incident, changes, history = prepare_action(store, incident_id, user=user, **step)
    return store.change_incident(incident_id, version=incident["version"], changes=changes, history=history)


def prepare_action(
    store,
    incident_id: int,
    *,
    user,
    action,
    note=None,
    assignee=None,
    hours=None,
    days=None,
    version=None,
    photo_count: int = 0,
    settings=None,
    calendar: WorkingCalendar | None = None,
    now: dt.datetime | None = None,
) -> tuple[dict, dict, dict]:
    """Check one workflow step and return (incident, changes, history entry) to store (nothing written).

    `photo_count` is the number of photos sent with the step: resolving a case whose category asks for an
    after-photo needs at least one.
    """
    if not isinstance(action, str) or action not in ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    step = ACTIONS[action]
    incident = get_case(store, incident_id, user=user)
    if user.role not in step.roles:
        raise Forbidden(f"a {user.role} may not {action} a case")
    status = incident["status"]
    if status not in step.sources:
        raise Conflict(
            f"cannot {action} a case that is {status}; {action} needs a case that is {' or '.join(step.sources)}",
            extra={"current": {"status": status, "version": incident["version"]}},
        )
    reason = _blocked(action, user, incident)
    if reason:
        raise Conflict(
            f"cannot {action}: {reason}", extra={"current": {"status": status, "version": incident["version"]}}
        )
    if version is not None:
        if isinstance(version, float) and version.is_integer() and abs(version) < 2**63:
            version = int(version)  # JSON Schema's integer: 5.0 is 5
        if isinstance(version, bool) or not isinstance(version, int):
            raise InvalidInput("version must be a whole number")
    if version is not None and version != incident["version"]:
        raise Conflict(
            f"incident {incident_id} is at version {incident['version']}, not {version}; reload it and try again",
            extra={"current": {"status": status, "version": incident["version"]}},
        )
    note = clean_text(note, "note", MAX_NOTE) or ""
    assignee = clean_text(assignee, "assignee", MAX_NAME)
    if "note" in step.needs and not note:
        raise InvalidInput(f"{action} needs a note saying why")
    if "assignee" in step.needs and not assignee:
        raise InvalidInput(f"{action} needs an assignee")
    if action == "resolve" and not photo_count and needs_after_photo(incident.get("category_code")):
        names = category_names()
        raise InvalidInput(
            f"resolving a case of category {incident['category_code']} {names[incident['category_code']]} needs a "
            "photo of the result: send it as multipart/form-data with the file in the field photos"
        )
    now = (now or clock.now()).replace(microsecond=0)
    changes: dict = {}
    if step.target is not None:
        changes["status"] = step.target
    if action == "dispatch":
        changes["assignee"] = assignee
    elif action == "resolve":
        changes["resolved_at"] = now
    elif action == "close":
        changes["closed_at"] = now
    elif action == "rework":
        changes["rework_count"] = incident["rework_count"] + 1
        changes["resolved_at"] = None
    elif action == "extend":
        changes["deadline"] = _extended(incident, hours=hours, days=days, now=now, calendar=calendar, settings=settings)
        note = f"{note} (→ {changes['deadline']:%Y-%m-%d %H:%M})"
    elif action in ("escalate", "hand_back"):
        level = LEVELS.index(incident.get("handling_level") or "grid")
        changes["handling_level"] = LEVELS[level + 1 if action == "escalate" else level - 1]
        if assignee:
            changes["assignee"] = assignee
        note = f"{note} ({LEVELS[level]} → {changes['handling_level']})".strip()
    elif action == "supervise":
        changes["supervised"] = True
    history = {
        "at": now,
        "actor": user.name,
        "action": action,
        "from_status": status,
        "to_status": changes.get("status", status),
        "note": note,
    }
    return incident, changes, history


def _extended(incident, *, hours, days, now, calendar, settings) -> dt.datetime:
    if (hours is None) == (days is None):
        raise InvalidInput("extend needs either hours or days (working time to add to the deadline)")
    calendar = calendar or calendar_from_settings(settings)
    # A deadline already passed is extended from now: the new one must lie in the future.
    base = max(incident["deadline"], now) if incident["deadline"] else now
    if hours is not None:
        return calendar.add_hours(base, _positive(hours, "hours"))
    return calendar.add_days(base, _positive(days, "days"))


# ---- listing and presenting -------------------------------------------------------------------------------
def list_cases(
    store,
    *,
    user,
    statuses: Sequence[str] | None = None,
    grid_code=None,
    community_code=None,
    street_code=None,
    category_code=None,
    source=None,
    reported_from: dt.datetime | None = None,
    reported_to: dt.datetime | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    overdue: bool = False,
    review: bool = False,
    after_id: int = 0,
    limit: int | None = 50,
    now: dt.datetime | None = None,
) -> list[dict]:
    """Return the incidents in the user's scope matching the filters, by id, after `after_id`; `review`: only
    those whose geocoded point a person should check."""
    for status in statuses or ():
        if status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    if category_code is not None:
        category(category_code)
    if source is not None and source not in SOURCES:
        raise InvalidInput(f"source must be one of {', '.join(SOURCES)}, not {source[:30]!r}")
    return store.list_incidents(
        scope=scope_of(user),
        statuses=statuses,
        grid_code=grid_code,
        community_code=community_code,
        street_code=street_code,
        category_code=category_code,
        source=source,
        reported_from=reported_from,
        reported_to=reported_to,
        bbox=bbox,
        deadline_before=(now or clock.now()) if overdue else None,
        geocode_review=True if review else None,
        after_id=after_id,
        limit=limit,
    )


def _iso(value) -> str | None:
    return clock.iso(value)


_UNKNOWN = object()


def present(
    incident: Mapping,
    *,
    user,
    now: dt.datetime | None = None,
    calendar: WorkingCalendar | None = None,
    light=_UNKNOWN,
    with_actions: bool = True,
) -> dict:
    """Return the JSON shape of an incident for this user: personal data masked unless the role needs it.

    `light` may be given when it was computed for many cases at once (traffic_lights_many); exports leave out
    the actions (`with_actions=False`), which only a page's buttons need.
    """
    now = now or clock.now()
    names = category_names()
    sees = user.role in SEES_PERSONAL_DATA
    open_case = incident["status"] not in FINISHED_STATUSES
    if light is _UNKNOWN:
        light = (
            traffic_light(
                reported_at=incident["reported_at"], deadline=incident["deadline"], now=now, calendar=calendar
            )
            if open_case
            else None
        )
    shown = {
        key: incident.get(key)
        for key in (
            "id", "title", "description", "status", "handling_level", "assignee", "category_code",
            "grid_code", "community_code", "street_code", "original_grid_code", "edition", "ambiguous",
            "address", "lon", "lat", "geocode_level", "geocode_confidence", "geocode_review", "source", "source_id",
            "supervised", "rework_count", "version",
        )
    }  # fmt: skip
    shown.update(
        category_name=names.get(incident.get("category_code")),
        reporter_name=incident.get("reporter_name") if sees else mask_name(incident.get("reporter_name")),
        reporter_phone=incident.get("reporter_phone") if sees else mask_phone(incident.get("reporter_phone")),
        reported_at=_iso(incident["reported_at"]),
        deadline=_iso(incident.get("deadline")),
        resolved_at=_iso(incident.get("resolved_at")),
        closed_at=_iso(incident.get("closed_at")),
        light=light,
        overdue=bool(open_case and incident.get("deadline") and now >= incident["deadline"]),
        ambiguous=bool(incident.get("ambiguous")),
        geocode_review=bool(incident.get("geocode_review")),
        supervised=bool(incident.get("supervised")),
        actions=allowed_actions(user, incident) if with_actions else [],
    )
    if "history" in incident:
        shown["history"] = [
            {
                "at": _iso(h["at"]),
                "actor": h["actor"],
                "action": h["action"],
                "from": h["from_status"],
                "to": h["to_status"],
                "note": h["note"],
            }
            for h in incident["history"]
        ]
    return shown


# ---- indicators (the figures are casestats'; here the user's scope picks the cases) ---------------------
def stats(
    store,
    *,
    user,
    by: str = "total",
    reported_from: dt.datetime | None = None,
    reported_to: dt.datetime | None = None,
    now: dt.datetime | None = None,
    **filters,
) -> dict:
    """Return the indicators of the cases in the user's scope reported in the period, grouped `by`.

    `filters` narrow the cases by any of STAT_FILTERS (grid_code, community_code, street_code, category_code,
    source), as the case list does.
    """
    if by not in GROUPS:
        raise InvalidInput(f"by must be one of {', '.join(GROUPS)}, not {by!r}")
    unknown = set(filters) - set(STAT_FILTERS)
    if unknown:
        raise TypeError(f"unknown filters {sorted(unknown)}")
    filters = {k: v for k, v in filters.items() if v is not None}
    check_filters(**filters)
    rows = store.list_incidents(
        scope=scope_of(user), reported_from=reported_from, reported_to=reported_to, limit=None, **filters
    )
    return stats_of(rows, by=by, reported_from=reported_from, reported_to=reported_to, now=now, filters=filters)
