"""The WSGI servers behind `gridmap serve`: waitress in one process (any OS), gunicorn for several (Unix).

Each process builds the current edition's grid index as it starts and keeps it at the newest revision in the
background (`assign.IndexKeeper`), so lookups do not wait for a build, and an edition activated by any
process is picked up by every process on its next lookup (the revision is read per request).

Why these servers (bench/bench_serve.py; a bare Flask route, one client, on a busy 2-core machine): waitress
answered in p50 0.26 ms but p99 153 ms, gunicorn's gthread worker p50 0.34 ms and p99 15 ms, because waitress
hands every request from its I/O thread to a worker thread and back. waitress stays the one-process default (it
runs everywhere, Windows included); with several processes gunicorn's `gthread` workers keep connections alive
and spread lookups over the cores.
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
    assign.IndexKeeper(app.extensions["gridmap"].store).start()
    return app


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
                "worker_class": "gthread",
                "threads": threads,
                "keepalive": 5,
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
