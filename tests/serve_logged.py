"""Serve gridmap as `gridmap serve` does, writing every request's path to the file named by argv[2].

The tests read that file to see what a client really asked the server (a bbox, a CQL2 filter, a CRS).
"""

from __future__ import annotations

import sys

import waitress
from flask import request

from gridmap.config import Settings
from gridmap.web import create_app


def run(port: int, log_path: str) -> None:
    """Serve on 127.0.0.1:port and append each request's full path to log_path."""
    app = create_app(Settings.from_env())

    @app.after_request
    def note(response):
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"{request.method} {request.full_path} {response.status_code}\n")
        return response

    waitress.serve(app, host="127.0.0.1", port=port, threads=4, ident="gridmap")


if __name__ == "__main__":
    run(int(sys.argv[1]), sys.argv[2])
