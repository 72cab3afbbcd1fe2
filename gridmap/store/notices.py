"""Edition revisions remembered between requests, forgotten when PostgreSQL says the editions table changed.

On PostGIS reading an edition's revision is a round trip to the server on every lookup: the largest part of a
lookup's time, and work the database's cores do too. A server process that calls `Store.follow_edition_changes()`
instead listens on the `gridmap_editions` channel (migration 0009: a trigger notifies on every change to the
editions table, delivered when the change commits) and answers from the revision it last read until a notice
comes.

The notice is checked by the request itself: a non-blocking look at the listening socket before each use of a
remembered revision, with no background thread that could be scheduled late. So a lookup in this process answers
from the new revision once PostgreSQL has sent the notice, which it does as the change commits (the server
signals listening sessions while committing, before the committing client hears back). A revision is also never
used longer than `MAX_AGE` seconds after it was read, which bounds how stale an answer can be should notices stop
without the connection failing (a half-open TCP connection). When the listening connection cannot be opened or
breaks, every lookup reads the revision again, as without this class, until it is open again.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from collections.abc import Callable

from psycopg import pq

log = logging.getLogger(__name__)
CHANNEL = "gridmap_editions"
MAX_AGE = 1.0  # seconds a remembered revision is used at most, notice or not
RETRY_SECONDS = 5.0  # after a failed connection attempt, lookups read the revision directly this long


class EditionNotices:
    """Revisions remembered per edition name, valid until a notice on the channel (or `max_age`)."""

    def __init__(self, connect: Callable[[], object], *, max_age: float = MAX_AGE) -> None:
        self._connect = connect  # opens a psycopg connection (autocommit) to the store's database
        self.max_age = max_age
        self._lock = threading.Lock()
        self._connection = None
        self._poll = None
        self._retry_at = 0.0
        self._epoch = 0  # counts changes seen: a remembered revision is good only in the epoch it was read in
        self._remembered: dict[str | None, tuple[int, float, tuple]] = {}

    def revision(self, name: str | None, read: Callable[[], tuple | None]) -> tuple | None:
        """Return `read()` (an edition's revision row), remembered until the editions table changes."""
        epoch = self._current_epoch()
        if epoch is None:
            return read()
        now = time.monotonic()
        hit = self._remembered.get(name)
        if hit is not None and hit[0] == epoch and hit[1] > now:
            return hit[2]
        # The epoch is taken before the read: a change committed during it leaves the row marked old.
        found = read()
        if found is not None:  # only editions that exist, so made-up names cannot grow the dict
            self._remembered[name] = (epoch, now + self.max_age, found)
        return found

    def changed(self) -> None:
        """Forget every remembered revision (this process committed a change: no need to wait for the notice)."""
        with self._lock:
            self._epoch += 1

    def close(self) -> None:
        """Stop listening."""
        with self._lock:
            self._drop()

    def _current_epoch(self) -> int | None:
        with self._lock:
            if self._connection is None and not self._open():
                return None
            try:
                if self._poll.poll(0):
                    # Anything at all on the socket counts as a change: a notice, or the server saying it is closing
                    # the connection (only the read after that fails). Reading a revision again costs one query.
                    self._epoch += 1
                    pgconn = self._connection.pgconn
                    pgconn.consume_input()  # raises once the server has closed the connection
                    while pgconn.notifies() is not None:
                        pass
                    if pgconn.status != pq.ConnStatus.OK:
                        raise ConnectionError("the listening connection is closed")
            except Exception:
                log.warning("lost the edition-change notices; reading revisions per lookup until reconnected")
                self._drop()
                return None
            return self._epoch

    def _open(self) -> bool:
        if time.monotonic() < self._retry_at:
            return False
        try:
            connection = self._connect()
            connection.execute(f"LISTEN {CHANNEL}")
        except Exception as exc:
            log.warning("cannot listen for edition changes (%s); reading revisions per lookup", type(exc).__name__)
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return False
        self._connection = connection
        self._poll = select.poll()  # not select.select: a socket numbered past 1023 would not fit
        self._poll.register(connection.pgconn.socket, select.POLLIN)
        self._epoch += 1  # whatever changed before LISTEN was not announced to us
        return True

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # already broken: closing is best effort
                self._connection.close()
        self._connection = self._poll = None
        self._epoch += 1
