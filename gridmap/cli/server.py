"""The WSGI servers behind `gridmap serve`: waitress in one process (any OS), gunicorn for several (Unix).

Each process builds the current edition's grid index as it starts and keeps it at the newest revision in the
background (`assign.IndexKeeper`), so lookups do not wait for a build, and an edition activated by any
process is picked up by every process on its next lookup: SpatiaLite reads the revision per request (microseconds),
PostGIS remembers it until PostgreSQL announces a change to the editions table (`Store.follow_edition_changes`).

Why these servers (bench/bench_serve.py; a bare Flask route, one client, on a busy 2-core machine): waitress
answered in p50 0.26 ms but p99 153 ms, gunicorn's gthread worker p50 0.34 ms and p99 15 ms, because waitress
hands every request from its I/O thread to a worker thread and back. waitress stays the one-process default (it
runs everywhere, Windows included); with several processes gunicorn spreads lookups over the cores (`sync`
workers for one thread a worker, `gthread` for more: see `worker_class`).
"""

from __future__ import annotations

import logging

from gridmap import assign
from gridmap.config import Settings

log = logging.getLogger(__name__)


def build_app(settings: Settings):
    """Create the Flask app and start keeping the current edition's index built, in this process."""
    from gridmap.web import create_app

    app = create_app(settings)
    store = app.extensions["gridmap"].store
    store.follow_edition_changes()
    assign.IndexKeeper(store).start()
    return app


SYNC_TIMEOUT = 300  # seconds


def worker_class(threads: int) -> str:
    """Return the gunicorn worker class for this many threads a worker: `sync` for one, `gthread` for more.

    With one thread a worker answers one request at a time either way, but a `gthread` worker keeps each
    keep-alive connection to itself: when the machine gives that process no CPU for a few milliseconds, every
    request on its connections waits, though the other worker is idle. `sync` workers take each request from the
    listening socket the kernel shares between them, so a request goes to whichever worker is free. On 2 busy
    cores, 16 connections of lookups: p99 14 ms with `sync`, 55 ms with one-thread `gthread`, at the same rate
    (~2,000/s; bench/bench_serve.py). The cost: no keep-alive (a TCP connect per request, ~0.05 ms on loopback),
    and a slow client holds a whole worker, so put a proxy in front (nginx) when clients are on the internet.
    """
    return "sync" if threads == 1 else "gthread"


def serve(settings: Settings, *, workers: int | None = None, threads: int | None = None) -> None:
    """Serve until stopped: waitress when one worker is asked for, gunicorn for more."""
    workers = workers or settings.workers
    threads = threads or settings.threads
    if workers <= 1:
        import waitress

        waitress.serve(build_app(settings), host=settings.host, port=settings.port, threads=threads, ident="gridmap")
        return
    from gunicorn.app.base import BaseApplication

    class Gunicorn(BaseApplication):
        """gunicorn run from Python: the app is created in each worker after the fork, never shared."""

        def load_config(self) -> None:
            options = {
                "bind": f"{settings.host}:{settings.port}",
                "workers": workers,
                "worker_class": worker_class(threads),
                "threads": threads,
                "keepalive": 5,
                # A sync worker that has not reported back within `timeout` is restarted: a request may take this
                # long (a download, a proposal). gthread workers report from their main loop whatever the threads do.
                "timeout": SYNC_TIMEOUT if threads == 1 else 30,
                "accesslog": None,
                "errorlog": "-",
                "loglevel": "warning",
                "proc_name": "gridmap",
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return build_app(settings)

    Gunicorn().run()
