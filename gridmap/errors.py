"""Errors that carry an HTTP status and a message that is safe to show a user."""

from __future__ import annotations


class GridmapError(Exception):
    """A failure the user can act on; `status` maps it to HTTP, `message` is safe to show."""

    status = 500

    def __init__(
        self, message: str, *, status: int | None = None, extra: dict | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        # More for API callers, e.g. the current state of a grid whose save was refused; user-safe too.
        self.extra = extra or {}
        # A short kind of problem without the particulars ("unknown category"), for grouping many of them.
        self.reason = reason or message
        if status is not None:
            self.status = status


class InvalidInput(GridmapError):
    """The caller sent something malformed: a bad file, a bad number, a bad geometry."""

    status = 400


class Unprocessable(InvalidInput):
    """Well-formed input that cannot be used: a point in no grid, an unknown address, a self-crossing polygon.

    HTTP 422: the request matches the published API description (what would be 400 does not), but what it
    asks for makes no sense against the data."""

    status = 422


class NotFound(GridmapError):
    """The thing asked for does not exist (or the caller may not know it exists)."""

    status = 404


class Conflict(GridmapError):
    """The request is well-formed but clashes with the current state (stale version, wrong status)."""

    status = 409


class Forbidden(GridmapError):
    """The caller is known but may not do this."""

    status = 403


class Unauthorized(GridmapError):
    """The caller has not said who they are."""

    status = 401


class ConfigError(GridmapError):
    """A setting is missing or wrong (bad database URL, missing SpatiaLite)."""

    status = 500


class ServiceUnavailable(GridmapError):
    """A service gridmap depends on (an online geocoder) did not answer; trying again later may work."""

    status = 503
    retry_after: int | None = None  # seconds, sent as the HTTP Retry-After header when known


class Busy(ServiceUnavailable):
    """The database is busy with another write (a large import); the same request a moment later works."""

    retry_after = 1
