"""Who may call which route: every view declares its rule with one decorator, and one hook enforces them.

    @blueprint.get("/api/things")
    @require_user("admin", "planner")     # signed in, with one of these roles (no roles: any signed-in user)
    def things(): ...

    @public                               # anyone, signed in or not (login page, health, OpenAPI, categories)
    @anonymous_if_allowed                 # signed-in users, and anonymous callers when GRIDMAP_ANONYMOUS_ACCESS
                                          # allows it (the start page, /api/editions, /api/locate)

A route that declares nothing is refused to everyone (403) and named in the log, and the access table test
(tests/test_access.py) fails naming it, so a new route cannot be reachable by accident. What a route then
shows inside its rule (a grid worker's own cases, drafts only to those who may see them) is the view's and
the domain's business; the rule is the door. The OpenAPI document takes each route's security from here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask, current_app, g, redirect, request, url_for

from gridmap import people
from gridmap.errors import ConfigError, Forbidden, NotFound, Unauthorized

log = logging.getLogger(__name__)
ANONYMOUS_LEVELS = ("none", "names")
# Paths machines call: an anonymous caller gets 401 (in the answer format of the path), not the sign-in page.
API_PATHS = ("/api/", "/open311/", "/ogc")
_ATTRIBUTE = "gridmap_access"


@dataclass(frozen=True)
class Rule:
    """Who may call a route: `public`, `signed_in` (optionally only `roles`) or `anonymous_if_allowed`."""

    kind: str
    roles: tuple[str, ...] = ()

    def allows_anonymous(self, anonymous_access: str) -> bool:
        """Whether a caller who is not signed in may call the route under this setting."""
        return self.kind == "public" or (self.kind == "anonymous_if_allowed" and anonymous_access != "none")

    def allows_role(self, role: str) -> bool:
        """Whether a signed-in user of this role may call the route."""
        return not self.roles or role in self.roles


def _declare(view, rule: Rule):
    setattr(view, _ATTRIBUTE, rule)
    return view


def public(view):
    """Declare a route open to everyone."""
    return _declare(view, Rule("public"))


def anonymous_if_allowed(view):
    """Declare a route open to signed-in users and, when the anonymous-access setting allows, to anyone."""
    return _declare(view, Rule("anonymous_if_allowed"))


def require_user(*roles: str):
    """Declare a route for signed-in users (of these roles only, when given): 401/login otherwise, 403."""
    unknown = set(roles) - set(people.ROLES)
    if unknown:
        raise ValueError(f"unknown role(s) {sorted(unknown)}")

    def decorate(view):
        return _declare(view, Rule("signed_in", tuple(roles)))

    return decorate


def rule_of(app: Flask, endpoint: str) -> Rule | None:
    """Return the rule a route declares (static files are public), or None."""
    if endpoint == "static" or endpoint.endswith(".static"):
        return Rule("public")
    return getattr(app.view_functions.get(endpoint), _ATTRIBUTE, None)


def undeclared(app: Flask) -> list[str]:
    """Return the endpoints that declare no access rule."""
    return sorted({r.endpoint for r in app.url_map.iter_rules() if rule_of(app, r.endpoint) is None})


def anonymous_access() -> str:
    """Return what anonymous callers may see: none (only the sign-in page) or names."""
    return current_app.extensions["gridmap"].settings.anonymous_access


def enforce():
    """Refuse the request when the route's rule does not admit the caller (runs before every view)."""
    if request.endpoint is None:  # no route matched: the 404/405 is answered by the error mapper
        return None
    rule = rule_of(current_app, request.endpoint)
    if rule is None:
        log.error("route %s declares no access rule; refused", request.endpoint)
        raise Forbidden("this address declares no access rule, so it is refused to everyone")
    user = g.get("user")
    if user is None:
        if rule.allows_anonymous(anonymous_access()):
            return None
        if request.path.startswith("/open311/"):
            raise Unauthorized("send an API key: api_key=KEY or Authorization: Bearer KEY (gridmap users add …)")
        if request.path.startswith(API_PATHS):
            raise Unauthorized("sign in or send an API token (Authorization: Bearer TOKEN)")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if not rule.allows_role(user.role):
        raise Forbidden(f"a {user.role} may not do this; it is for: {', '.join(rule.roles)}")
    return None


def init_access(app: Flask) -> None:
    """Check every request against its route's declared rule (after the user is known)."""
    settings = app.extensions["gridmap"].settings
    if settings.anonymous_access not in ANONYMOUS_LEVELS:
        raise ConfigError(
            f"GRIDMAP_ANONYMOUS_ACCESS must be one of {', '.join(ANONYMOUS_LEVELS)}, not {settings.anonymous_access!r}"
        )
    app.before_request(enforce)


# ---- editions: drafts are shown only to those who may see them -----------------------------------------------
def visible_edition(store, name: str | None):
    """Return the named edition (default: the current one, or None) if the caller may see it; else 404."""
    if name is None:
        return store.current_edition()
    edition = store.find_edition(name)
    if edition is None or not people.may_see_edition(g.get("user"), edition.status):
        known = ", ".join(e.name for e in visible_editions(store)) or "none"
        raise NotFound(f"no edition named {name!r} (editions: {known})")
    return edition


def visible_editions(store) -> list:
    """Return the editions the caller may see, oldest first (anonymous callers: the current one only)."""
    user = g.get("user")
    return [e for e in store.list_editions() if people.may_see_edition(user, e.status)]
