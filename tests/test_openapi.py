"""The OpenAPI document tells the truth about the app: every /api route is described by its module (not only
by the fallback), its security is the route's access rule, and the errors every route can give are listed.
Real answers are checked against it in tests/test_access.py and by schemathesis (tests/test_schemathesis.py)."""

from __future__ import annotations

import re

from gridmap.config import Settings
from gridmap.web import access, create_app

FALLBACK_OK = {"application/json": {"schema": {"type": "object"}}}


def test_every_api_operation_is_described_with_its_access_rule(database_url):
    for anonymous in ("none", "names"):
        app = create_app(Settings(database_url=database_url, secret_key="t", anonymous_access=anonymous))
        document = app.test_client().get("/api/openapi.json").get_json()
        for rule in app.url_map.iter_rules():
            if not rule.rule.startswith("/api/"):
                continue
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            declared = access.rule_of(app, rule.endpoint)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                operation = document["paths"][path][method.lower()]
                where = f"{method} {path}"
                security = operation["security"]
                if declared.kind == "public":
                    assert security == [], where
                elif declared.allows_anonymous(anonymous):
                    assert {} in security and {"bearer": []} in security, where
                else:
                    assert {} not in security and {"bearer": []} in security, where
                    assert "401" in operation["responses"], where
                if declared.roles:
                    assert "403" in operation["responses"], where
                ok = [c for c in operation["responses"] if c.startswith("2")]
                assert ok, where
                content = operation["responses"][ok[0]].get("content")
                if path != "/api/openapi.json" and ok[0] != "204":
                    assert content != FALLBACK_OK, f"{where}: describe its answer in OPENAPI_PATHS"
                busy = operation["responses"]["503"]
                assert busy["headers"]["Retry-After"]["required"] is True, where
                if "requestBody" in operation:
                    assert "413" in operation["responses"], where
                for parameter in operation.get("parameters", []):
                    assert parameter["in"] in ("path", "query") and "schema" in parameter, where
        app.extensions["gridmap"].store.close()


def test_times_are_described_as_aware_date_times(database_url):
    app = create_app(Settings(database_url=database_url, secret_key="t"))
    schemas = app.test_client().get("/api/openapi.json").get_json()["components"]["schemas"]
    incident = schemas["Incident"]["properties"]
    for key in ("reported_at", "deadline", "resolved_at", "closed_at"):
        assert incident[key]["format"] == "date-time"
    assert "+08:00" in app.test_client().get("/api/openapi.json").get_json()["info"]["description"]
    assert schemas["CategoryList"]["type"] == "array" and schemas["EditionList"]["type"] == "array"
    app.extensions["gridmap"].store.close()
