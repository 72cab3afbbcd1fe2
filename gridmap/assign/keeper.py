"""One grid index per edition in memory, kept at the edition's revision and built ahead in the background.

Every lookup reads the edition's revision (one indexed row, `Store.edition_revision`) and uses the index built at
that revision; a change made by any process bumps the revision in the same transaction, so the next lookup in
every process sees it. A lookup that finds no index at the current revision waits for the one build of it (never
two builds of the same revision at once); `IndexKeeper` (started by `gridmap serve`) polls the current edition's
revision and builds the new index before requests ask for it, and `prepare` starts a build at once (after an
activation, at start-up). A request during a rebuild therefore waits at most for that rebuild.

Each index built is also kept on disk (`index_cache`, when a directory is set): its raster under the grids it
was built from, its grids under the edition's state, so another process (a second server worker, the next bulk
`locate`) loads what this one built instead of building it again.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from gridmap.errors import NotFound

from . import index_cache
from .index import GridIndex

log = logging.getLogger(__name__)
KEEP_EDITIONS = 4  # indexes kept per database (the current edition, drafts being looked at, the last one retired)
POLL_SECONDS = 1.0  # how often a server's keeper looks for a new revision of the current edition

EditionState = tuple[str, int, str]  # (name, revision, created): what identifies one state of an edition

_entries: OrderedDict[tuple[str, str], tuple[EditionState, GridIndex]] = OrderedDict()
_builds: dict[tuple[str, EditionState], _Build] = {}
_lock = threading.Lock()


class _Build:
    """One build of one revision, which every thread that needs it waits for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.index: GridIndex | None = None
        self.error: BaseException | None = None

    def result(self) -> GridIndex:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.index


def edition_state(store, edition: str | None = None) -> EditionState:
    """Return (name, revision, created) of an edition, default the current one: one indexed row."""
    found = store.edition_revision(edition)
    if found is None:
        if edition is None:
            raise NotFound("there is no current edition: load boundaries and activate an edition first")
        store.get_edition(edition)  # raises NotFound listing the editions there are
        raise NotFound(f"no edition named {edition!r}")
    return found


def build_index(store, edition: str) -> GridIndex:
    """Read an edition's grids (plain rows, no GeoDataFrame) and build its index."""
    import shapely

    grids, communities = store.grid_rows(edition)
    street_of = dict(communities)
    return GridIndex(
        [g[0] for g in grids],
        shapely.from_wkb([bytes(g[3]) for g in grids]) if grids else [],
        [g[2] for g in grids],
        [street_of.get(g[2]) for g in grids],
        names=[g[1] for g in grids],
        edition=edition,
    )


def grid_index(store, edition: str | None = None) -> GridIndex:
    """Return the index of an edition (default: the current one) at its current revision."""
    return index_at(store, edition_state(store, edition))


def cached_index(store, state: EditionState) -> GridIndex | None:
    """Return the index at exactly this state if it is in memory, else None (never builds)."""
    with _lock:
        entry = _entries.get((store.url, state[0]))
    return entry[1] if entry is not None and entry[0] == state else None


def index_at(store, state: EditionState) -> GridIndex:
    """Return the index of the edition at `state`, building it (once, whoever asks first) when missing."""
    key = (store.url, state[0])
    with _lock:
        entry = _entries.get(key)
        if entry is not None and entry[0] == state:
            _entries.move_to_end(key)
            return entry[1]
        build = _builds.get((store.url, state))
        owner = build is None
        if owner:
            build = _builds[(store.url, state)] = _Build()
    if not owner:
        return build.result()
    try:
        build.index = build_index(store, state[0])
        _keep_on_disk(store.url, state, build.index)
    except BaseException as exc:
        build.error = exc
    finally:
        with _lock:
            if build.index is not None:
                entry = _entries.get(key)
                # A slower build of an older revision must not replace a newer one.
                if entry is None or entry[0][2] != state[2] or entry[0][1] <= state[1]:
                    _entries[key] = (state, build.index)
                    _entries.move_to_end(key)
                for old in [k for k in _entries if k[0] == store.url][:-KEEP_EDITIONS]:
                    del _entries[old]
            del _builds[(store.url, state)]
        build.done.set()
    return build.result()


def saved_index(url: str, state: EditionState) -> GridIndex | None:
    """Return the index of an edition at `state` from the grids kept on disk, or None when none are kept."""
    found = index_cache.load_grids(url, state)
    if found is None:
        return None
    import shapely

    codes, names, communities, streets, wkbs = found
    return GridIndex(codes, shapely.from_wkb(wkbs), communities, streets, names=names, edition=state[0])


def _keep_on_disk(url: str, state: EditionState, index: GridIndex) -> None:
    if index_cache.directory() is None:
        return
    import shapely

    index_cache.save_grids(
        url, state, index.codes, index.names, index.community_codes, index.street_codes,
        shapely.to_wkb(index.geometries).tolist(),
    )  # fmt: skip


def prepare(store, edition: str | None = None) -> threading.Thread:
    """Build the index of an edition (default: the current one) in a background thread, ahead of lookups."""

    def run() -> None:
        try:
            grid_index(store, edition)
        except NotFound:
            pass  # nothing to build yet
        except Exception:
            log.exception("building the grid index ahead of time failed; lookups will build it when asked")

    thread = threading.Thread(target=run, name="gridmap-index-build", daemon=True)
    thread.start()
    return thread


class IndexKeeper:
    """A background thread that keeps the current edition's index built at its newest revision."""

    def __init__(self, store, *, interval: float = POLL_SECONDS) -> None:
        self.store = store
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gridmap-index-keeper", daemon=True)

    def start(self) -> IndexKeeper:
        """Build the current index now, then follow the revision."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following (the thread ends within one interval)."""
        self._stop.set()

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                grid_index(self.store)
                failing = False
            except NotFound:
                pass
            except Exception:
                if not failing:  # one log line per outage, not one a second
                    log.exception("the grid index keeper cannot read the current edition; retrying")
                failing = True
            self._stop.wait(self.interval)
