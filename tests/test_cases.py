"""Cases core: working calendar, deadlines, traffic light, categories, workflow, permissions, indicators."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner
from geodata import GRIDS, load_district
from hypothesis import given, settings
from hypothesis import strategies as st

from gridmap import casefields, cases, casestats, categories
from gridmap.cli import main
from gridmap.errors import Conflict, Forbidden, InvalidInput, NotFound
from gridmap.people import User

NW, SW, NE, SE = (g["code"] for g in GRIDS)
WEST, EAST = "120104001001", "120104001002"
STREET = "120104001"
NW_POINT = {"lon": 117.105, "lat": 39.115}
NE_POINT = {"lon": 117.115, "lat": 39.115}
FRIDAY = dt.datetime(2026, 10, 9, 16, 0)  # a Friday
NATIONAL_DAY = [dt.date(2026, 10, 1) + dt.timedelta(days=i) for i in range(7)]


# ---- working calendar ---------------------------------------------------------------------------------------
def test_four_working_hours_from_friday_afternoon_run_over_the_weekend():
    calendar = cases.WorkingCalendar()
    assert calendar.add_hours(FRIDAY, 4) == dt.datetime(2026, 10, 12, 11, 0)  # Fri 16–18, Mon 9–11
    assert calendar.add_hours(dt.datetime(2026, 10, 12, 11, 0), 1.5) == dt.datetime(2026, 10, 12, 14, 0)  # lunch


def test_a_holiday_monday_moves_the_deadline_to_tuesday():
    calendar = cases.WorkingCalendar(holidays=[dt.date(2026, 10, 12)])
    assert calendar.add_hours(FRIDAY, 4) == dt.datetime(2026, 10, 13, 11, 0)
    assert calendar.working_time(FRIDAY, dt.datetime(2026, 10, 13, 11, 0)) == dt.timedelta(hours=4)


def test_working_days_skip_a_holiday_week_and_count_a_make_up_saturday():
    # Reported on Wednesday 30 September before the National Day week; Saturday 10 October is worked (调休).
    calendar = cases.WorkingCalendar(holidays=NATIONAL_DAY, workdays=[dt.date(2026, 10, 10)])
    reported = dt.datetime(2026, 9, 30, 10, 0)
    assert calendar.add_days(reported, 1) == dt.datetime(2026, 10, 8, 10, 0)
    assert calendar.add_days(reported, 3) == dt.datetime(2026, 10, 10, 10, 0)  # Thu, Fri, then the Saturday
    assert not calendar.is_working_day(dt.date(2026, 10, 5)) and calendar.is_working_day(dt.date(2026, 10, 10))


def test_a_deadline_at_the_end_of_a_day_stays_on_that_day():
    calendar = cases.WorkingCalendar()
    assert calendar.add_days(dt.datetime(2026, 10, 9, 9, 0), 1) == dt.datetime(2026, 10, 9, 18, 0)
    assert calendar.add_hours(dt.datetime(2026, 10, 10, 20, 0), 0) == dt.datetime(2026, 10, 10, 20, 0)


def test_bad_calendars_are_refused():
    with pytest.raises(InvalidInput, match="non-overlapping"):
        cases.WorkingCalendar(periods=[(dt.time(9), dt.time(13)), (dt.time(12), dt.time(18))])
    with pytest.raises(InvalidInput, match="not a date"):
        cases.parse_dates("2026-13-01")
    assert cases.parse_dates("2026-10-01..2026-10-03, 2026-12-25") == [
        dt.date(2026, 10, 1),
        dt.date(2026, 10, 2),
        dt.date(2026, 10, 3),
        dt.date(2026, 12, 25),
    ]


class _Settings:
    working_hours = "08:30-12:00,14:00-17:30"
    holidays = "2026-10-12"
    extra_workdays = ""


def test_calendar_from_settings():
    calendar = cases.calendar_from_settings(_Settings())
    assert calendar.day_length == dt.timedelta(hours=7)
    assert calendar.add_hours(FRIDAY, 4) == dt.datetime(2026, 10, 13, 11, 0)  # Fri 16–17:30, Tue 8:30–11


_CALENDAR = cases.WorkingCalendar(
    holidays=[dt.date(2026, 1, 1), *NATIONAL_DAY, dt.date(2026, 12, 25)],
    workdays=[dt.date(2026, 10, 10), dt.date(2026, 9, 27)],
)
moments = st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2026, 12, 31))


@settings(max_examples=300, deadline=None)
@given(start=moments, minutes=st.integers(min_value=0, max_value=60 * 7 * 40))
def test_adding_working_time_then_measuring_it_back_gives_the_same(start, minutes):
    amount = dt.timedelta(minutes=minutes)
    end = _CALENDAR.add(start, amount)
    assert end >= start
    assert _CALENDAR.working_time(start, end) == amount
    if minutes:  # and it is the earliest such moment
        assert _CALENDAR.working_time(start, end - dt.timedelta(microseconds=1)) < amount


@settings(max_examples=200, deadline=None)
@given(a=moments, b=moments, c=moments)
def test_working_time_adds_up_over_consecutive_intervals(a, b, c):
    a, b, c = sorted((a, b, c))
    assert _CALENDAR.working_time(a, c) == _CALENDAR.working_time(a, b) + _CALENDAR.working_time(b, c)
    assert _CALENDAR.working_time(a, b) <= b - a


# ---- traffic light -----------------------------------------------------------------------------------------
def test_traffic_light_counts_working_time_not_wall_clock():
    reported = dt.datetime(2026, 10, 12, 9, 0)  # Monday
    deadline = dt.datetime(2026, 10, 12, 14, 30)  # 4 working hours later (lunch 12:00–13:30 does not count)
    light = lambda now: cases.traffic_light(reported_at=reported, deadline=deadline, now=now)  # noqa: E731
    assert light(dt.datetime(2026, 10, 12, 12, 11)) == "green"  # 3 h 11 min = 79.6 %
    assert light(dt.datetime(2026, 10, 12, 13, 30)) == "green"  # still 3 h used: the lunch break is free
    assert light(dt.datetime(2026, 10, 12, 13, 42)) == "yellow"  # 3 h 12 min = 80 %
    assert light(deadline) == "red"
    assert cases.traffic_light(reported_at=reported, deadline=None, now=deadline) is None


def test_traffic_light_stays_put_over_a_weekend():
    calendar = cases.WorkingCalendar()
    deadline = calendar.add_hours(FRIDAY, 10)
    saturday, monday = dt.datetime(2026, 10, 10, 12), dt.datetime(2026, 10, 12, 9)
    assert cases.traffic_light(reported_at=FRIDAY, deadline=deadline, now=saturday, calendar=calendar) == "green"
    assert cases.traffic_light(reported_at=FRIDAY, deadline=deadline, now=monday, calendar=calendar) == "green"
    late_monday = dt.datetime(2026, 10, 12, 16, 30)  # 2 + 6 = 8 of 10 hours
    assert cases.traffic_light(reported_at=FRIDAY, deadline=deadline, now=late_monday, calendar=calendar) == "yellow"


# ---- categories and personal data ---------------------------------------------------------------------------
def test_categories_have_two_plus_two_digit_codes_and_deadlines():
    table = categories.load_categories()
    codes = [c["code"] for c in table]
    assert len(codes) == len(set(codes)) and all(len(c) == 4 and c.isdigit() for c in codes)
    classes = {c["class_code"]: c["class_name"] for c in table}
    # GB/T 30428.2's event classes and DOMAIN.md's social-governance categories.
    assert {"市容环境", "宣传广告", "施工管理", "突发事件", "街面秩序"} <= set(classes.values())
    assert {"环境卫生", "矛盾纠纷", "安全隐患", "市政设施", "民生服务", "疫情防控", "交通"} <= set(classes.values())
    rubbish = categories.category("0102")
    assert (rubbish["name"], rubbish["limit"], rubbish["unit"], rubbish["deadline"]) == (
        "暴露垃圾",
        4,
        "hours",
        "4工作小时",
    )
    building = categories.category("0101")
    assert (building["limit"], building["unit"], building["limit_working_hours"]) == (15, "days", 112.5)
    with pytest.raises(InvalidInput, match="unknown category '9999'"):
        categories.category("9999")


def test_deadline_of_a_category_uses_the_calendar():
    calendar = cases.WorkingCalendar(holidays=[dt.date(2026, 10, 12)])
    assert categories.deadline_for("0102", FRIDAY, calendar) == dt.datetime(2026, 10, 13, 11, 0)
    assert categories.deadline_for("1101", dt.datetime(2026, 10, 14, 10), calendar) == dt.datetime(2026, 10, 21, 10)


@pytest.mark.parametrize(
    "phone,masked",
    [("13812341234", "138****1234"), ("022-23456789", "022*****6789"), ("110", "*10"), (None, None)],
)
def test_mask_phone(phone, masked):
    assert cases.mask_phone(phone) == masked


# ---- the workflow on a real store --------------------------------------------------------------------------
ADMIN = User("admin", "admin")
SUPERVISOR = User("书记", "supervisor", (WEST,))
STREET_CHIEF = User("街道主任", "supervisor", (STREET,))
WORKER = User("网格员", "grid_worker", (NW,))
VIEWER = User("viewer", "viewer")
PLANNER = User("planner", "planner")


@pytest.fixture
def district(store, tmp_path):
    load_district(store, tmp_path)
    return store


def _report(store, user=ADMIN, point=NW_POINT, **extra):
    fields = {
        "title": "暴露垃圾",
        "description": "路边垃圾三天未清",
        "category_code": "0102",
        "reporter_name": "王小明",
        "reporter_phone": "13812341234",
        "source": "patrol",
        **point,
        **extra,
    }
    return cases.report(store, user=user, **fields)


def _stored(store, *, status, grid=NW, level="grid", deadline=None, **extra) -> int:
    community = WEST if grid in (NW, SW) else EAST
    row = {
        "source": "web",
        "title": "t",
        "reported_at": dt.datetime(2026, 10, 12, 9),
        "grid_code": grid,
        "community_code": community,
        "street_code": STREET,
        "status": status,
        "handling_level": level,
        "deadline": deadline,
        "category_code": "0102",
        **extra,
    }
    return store.add_incidents([row], actor="test")[0]


def test_report_geocodes_assigns_and_sets_the_deadline(district):
    district.replace_gazetteer([{"kind": "estate", "name": "百合豪庭", "lon": 117.115, "lat": 39.105, "aliases": ""}])
    now = FRIDAY
    incident = cases.report(
        district, user=STREET_CHIEF, title="积水", category_code="0404", address="百合豪庭小区", now=now
    )
    assert (incident["grid_code"], incident["community_code"], incident["street_code"]) == (SE, EAST, STREET)
    assert incident["status"] == "reported" and incident["geocode_level"] == "estate"
    assert incident["deadline"] == dt.datetime(2026, 10, 9, 18, 0)  # two working hours
    assert [(h["actor"], h["action"], h["to_status"]) for h in incident["history"]] == [
        ("街道主任", "report", "reported")
    ]
    # A GCJ-02 point from a phone map is converted before it is assigned.
    gcj_lon, gcj_lat = geocode_free_gcj(NW_POINT)
    assert _report(district, lon=gcj_lon, lat=gcj_lat, crs="gcj02")["grid_code"] == NW


def geocode_free_gcj(point):
    from gridmap import crs

    lon, lat = crs.wgs84_to_gcj02(lon=point["lon"], lat=point["lat"])
    return float(lon), float(lat)


BAD_REPORTS = [
    ({"category_code": "0000"}, "unknown category"),
    ({"category_code": None}, "category is required"),
    ({"lon": None, "lat": None}, "give the place"),
    ({"lon": None, "lat": None, "address": "火星路1号"}, "was not found"),
    ({"title": "x" * 201}, "at most 200"),
    ({"title": "  "}, "title is required"),
    ({"title": 5}, "title must be text"),
    ({"lon": "east"}, "is not a number"),
    ({"lon": True}, "lon must be a number"),
    ({"lon": 117.3, "lat": 39.3}, "lies in no grid"),
    ({"reporter_phone": "call me"}, "reporter_phone"),
    ({"source": "rumour"}, "source must be one of"),
    ({"crs": "mars"}, "mars"),
]


def test_bad_reports_are_refused_and_write_nothing(district):
    # One database for the whole table: a fresh PostGIS database per row would cost a second each.
    for extra, message in BAD_REPORTS:
        with pytest.raises(InvalidInput, match=message):
            _report(district, **extra)
        assert district.table_counts()["incidents"] == 0 and district.table_counts()["incident_history"] == 0


def test_viewers_and_planners_cannot_report(district):
    for user in (VIEWER, PLANNER):
        with pytest.raises(Forbidden):
            _report(district, user=user)


def test_the_full_loop_with_rework_keeps_an_append_only_history(district):
    incident_id = _report(district)["id"]
    steps = [
        (SUPERVISOR, "register", {}),
        (SUPERVISOR, "dispatch", {"assignee": "网格员"}),
        (WORKER, "start", {}),
        (WORKER, "resolve", {"note": "已清理"}),
        (SUPERVISOR, "rework", {"note": "仍有残留"}),
        (WORKER, "resolve", {"note": "清理干净"}),
        (SUPERVISOR, "close", {}),
    ]
    seen = []
    for user, action, extra in steps:
        before = district.get_incident(incident_id)["history"]
        after = cases.act(district, incident_id, user=user, action=action, **extra)
        assert after["history"][: len(before)] == before  # earlier entries never change
        seen.append(after["status"])
    assert seen == ["registered", "dispatched", "in_progress", "resolved", "in_progress", "resolved", "closed"]
    final = district.get_incident(incident_id)
    assert final["rework_count"] == 1 and final["assignee"] == "网格员" and final["closed_at"] is not None
    assert [(h["action"], h["from_status"], h["to_status"]) for h in final["history"]] == [
        ("report", None, "reported"),
        ("register", "reported", "registered"),
        ("dispatch", "registered", "dispatched"),
        ("start", "dispatched", "in_progress"),
        ("resolve", "in_progress", "resolved"),
        ("rework", "resolved", "in_progress"),
        ("resolve", "in_progress", "resolved"),
        ("close", "resolved", "closed"),
    ]
    assert final["history"][5]["note"] == "仍有残留" and final["history"][5]["actor"] == "书记"


def test_every_illegal_transition_is_a_conflict_that_changes_nothing(district):
    refused = 0
    for action, step in cases.ACTIONS.items():
        for status in (s for s in casefields.STATUSES if s not in step.sources):
            incident_id = _stored(district, status=status, level="community")
            before = district.get_incident(incident_id)
            with pytest.raises(Conflict, match=f"cannot {action} a case that is {status}"):
                cases.act(district, incident_id, user=ADMIN, action=action, note="n", assignee="a", days=1)
            assert district.get_incident(incident_id) == before
            refused += 1
    assert refused == 7 * 11 - sum(len(step.sources) for step in cases.ACTIONS.values()) == 53


def test_the_escalation_ladder_goes_up_to_the_district_and_back(district):
    incident_id = _stored(district, status="dispatched")
    levels = [cases.act(district, incident_id, user=ADMIN, action="escalate")["handling_level"] for _ in range(3)]
    assert levels == ["community", "street", "district"]
    with pytest.raises(Conflict, match="top of the ladder"):
        cases.act(district, incident_id, user=ADMIN, action="escalate")
    levels = [cases.act(district, incident_id, user=ADMIN, action="hand_back")["handling_level"] for _ in range(3)]
    assert levels == ["street", "community", "grid"]
    with pytest.raises(Conflict, match="bottom of the ladder"):
        cases.act(district, incident_id, user=ADMIN, action="hand_back")
    # A grid worker passes a case up once; after that it is the community's.
    cases.act(district, incident_id, user=WORKER, action="escalate")
    with pytest.raises(Conflict, match="escalates only from the grid"):
        cases.act(district, incident_id, user=WORKER, action="escalate")


def test_extend_and_supervise(district):
    deadline = dt.datetime(2026, 10, 12, 14, 0)
    incident_id = _stored(district, status="in_progress", deadline=deadline)
    with pytest.raises(InvalidInput, match="needs a note"):
        cases.act(district, incident_id, user=SUPERVISOR, action="extend", days=1)
    with pytest.raises(InvalidInput, match="either hours or days"):
        cases.act(district, incident_id, user=SUPERVISOR, action="extend", note="等待配件")
    extended = cases.act(
        district, incident_id, user=SUPERVISOR, action="extend", days=2, note="等待配件", now=dt.datetime(2026, 10, 12)
    )
    assert extended["deadline"] == dt.datetime(2026, 10, 14, 14, 0)
    assert "等待配件" in extended["history"][-1]["note"]
    supervised = cases.act(district, incident_id, user=SUPERVISOR, action="supervise", note="请加快")
    assert supervised["supervised"] and supervised["history"][-1]["action"] == "supervise"


def test_a_stale_version_is_a_conflict(district):
    incident_id = _stored(district, status="reported")
    cases.act(district, incident_id, user=ADMIN, action="register", version=1)
    with pytest.raises(Conflict, match="version 2, not 1"):
        cases.act(district, incident_id, user=ADMIN, action="dispatch", assignee="x", version=1)


def test_unknown_action_and_missing_fields(district):
    incident_id = _stored(district, status="registered")
    with pytest.raises(InvalidInput, match="action must be one of"):
        cases.act(district, incident_id, user=ADMIN, action="delete")
    with pytest.raises(InvalidInput, match="needs an assignee"):
        cases.act(district, incident_id, user=ADMIN, action="dispatch")


# ---- permissions -------------------------------------------------------------------------------------------
# Which roles may take each action on a case in their area (written out, not derived from cases.ACTIONS).
MAY = {
    "register": {"admin", "supervisor"},
    "dispatch": {"admin", "supervisor"},
    "start": {"admin", "supervisor", "grid_worker"},
    "resolve": {"admin", "supervisor", "grid_worker"},
    "close": {"admin", "supervisor"},
    "reject": {"admin", "supervisor"},
    "rework": {"admin", "supervisor"},
    "extend": {"admin", "supervisor"},
    "escalate": {"admin", "supervisor", "grid_worker"},
    "hand_back": {"admin", "supervisor"},
    "supervise": {"admin", "supervisor"},
}
SETUP = {  # a status (and handling level) in which the action is legal
    "register": ("reported", "grid"),
    "dispatch": ("registered", "grid"),
    "start": ("dispatched", "grid"),
    "resolve": ("in_progress", "grid"),
    "close": ("resolved", "grid"),
    "reject": ("reported", "grid"),
    "rework": ("resolved", "grid"),
    "extend": ("in_progress", "grid"),
    "escalate": ("dispatched", "grid"),
    "hand_back": ("dispatched", "community"),
    "supervise": ("in_progress", "grid"),
}
USERS = {"admin": ADMIN, "supervisor": SUPERVISOR, "grid_worker": WORKER, "viewer": VIEWER, "planner": PLANNER}


def test_the_permission_matrix_role_by_action_by_own_or_other_grid(district):
    assert set(MAY) == set(cases.ACTIONS)
    outcomes = {}
    for action, (status, level) in SETUP.items():
        for role, user in USERS.items():
            for place, grid in (("own", NW), ("other", NE)):
                incident_id = _stored(district, status=status, grid=grid, level=level, deadline=FRIDAY)
                try:
                    cases.act(district, incident_id, user=user, action=action, note="n", assignee="a", hours=1)
                    outcome = 200
                except (NotFound, Forbidden) as exc:
                    outcome = exc.status
                    assert district.get_incident(incident_id)["version"] == 1
                outcomes[action, role, place] = outcome
    for (action, role, place), outcome in outcomes.items():
        if role in ("supervisor", "grid_worker") and place == "other":
            expected = 404  # another area's case does not exist for them
        elif role in MAY[action]:
            expected = 200
        else:
            expected = 403
        assert outcome == expected, (action, role, place)


def test_scope_and_personal_data_by_role(district):
    nw = _report(district)["id"]
    ne = _report(district, point=NE_POINT)["id"]
    listed = {u.name: [r["id"] for r in cases.list_cases(district, user=u)] for u in USERS.values()}
    assert listed == {"admin": [nw, ne], "书记": [nw], "网格员": [nw], "viewer": [nw, ne], "planner": [nw, ne]}
    assert [r["id"] for r in cases.list_cases(district, user=STREET_CHIEF)] == [nw, ne]
    with pytest.raises(NotFound):
        cases.get_case(district, ne, user=WORKER)
    incident = district.get_incident(nw)
    shown = {name: cases.present(incident, user=user) for name, user in USERS.items()}
    assert shown["admin"]["reporter_phone"] == "13812341234" and shown["supervisor"]["reporter_name"] == "王小明"
    for role in ("grid_worker", "viewer", "planner"):
        assert shown[role]["reporter_phone"] == "138****1234" and shown[role]["reporter_name"] == "王**"
    assert shown["viewer"]["actions"] == [] and "register" in shown["supervisor"]["actions"]


# ---- indicators ---------------------------------------------------------------------------------------------
def test_jinyuan_86_received_84_closed_is_97_7_percent(district):
    """Seed 001: Jinyuan community received 86 cases and closed 84 (98 %, 97.7 % to one decimal)."""
    reported = dt.datetime(2026, 3, 2, 9)
    deadline = dt.datetime(2026, 3, 4, 9)
    rows = []
    for i in range(86):
        closed = i < 84
        late = i >= 80  # four closed after their deadline
        rows.append(
            {
                "source": "hotline",
                "title": f"case {i}",
                "reported_at": reported,
                "deadline": deadline,
                "grid_code": NW if i % 2 else SW,
                "community_code": WEST,
                "street_code": STREET,
                "category_code": "1101" if i < 10 else "0102",
                "status": "closed" if closed else "in_progress",
                "resolved_at": reported + dt.timedelta(hours=5) if closed else None,
                "closed_at": (deadline + dt.timedelta(hours=1) if late else reported + dt.timedelta(hours=6))
                if closed
                else None,
                "rework_count": 1 if i < 3 else 0,
            }
        )
    district.add_incidents(rows)
    result = cases.stats(district, user=ADMIN, by="category", now=dt.datetime(2026, 3, 10))
    total = result["total"]
    assert (total["received"], total["closed"], total["resolution_rate"]) == (86, 84, 97.7)
    # due = 84 closed + 2 open past the deadline; on time = 80.
    assert (total["due"], total["closed_on_time"], total["on_time_rate"]) == (86, 80, 93.0)
    assert (total["overdue"], total["reworked"], total["rework_rate"]) == (2, 3, 3.6)
    assert total["median_hours_to_close"] == 6.0
    assert [(g["key"], g["received"]) for g in result["groups"]] == [("0102", 76), ("1101", 10)]
    # A grid worker's figures cover only their grid.
    mine = cases.stats(district, user=WORKER, by="grid", now=dt.datetime(2026, 3, 10))
    assert [g["key"] for g in mine["groups"]] == [NW] and mine["total"]["received"] == 43
    # The period filter.
    assert cases.stats(district, user=ADMIN, reported_from=dt.datetime(2026, 3, 3))["total"]["received"] == 0


def test_indicators_of_nothing_are_empty_not_errors():
    figures = casestats.indicators([], now=dt.datetime(2026, 1, 1))
    assert figures["received"] == 0 and figures["resolution_rate"] is None and figures["median_hours_to_close"] is None


def test_stats_and_categories_commands(database_url, tmp_path):
    from gridmap.store import Store

    store = Store.open(database_url)
    load_district(store, tmp_path)
    _report(store)
    store.close()
    runner = CliRunner()
    result = runner.invoke(main, ["stats", "--by", "grid", "--db", database_url])
    assert result.exit_code == 0, result.output
    assert NW in result.output and "resolved %" in result.output
    result = runner.invoke(main, ["stats", "--json", "--from", "2000-01-01", "--db", database_url])
    assert result.exit_code == 0 and '"received": 1' in result.output
    result = runner.invoke(main, ["stats", "--by", "nothing", "--db", database_url])
    assert result.exit_code != 0 and "nothing" in result.output
    result = runner.invoke(main, ["categories"])
    assert result.exit_code == 0 and "0102  暴露垃圾 (Exposed rubbish): 4工作小时" in result.output
