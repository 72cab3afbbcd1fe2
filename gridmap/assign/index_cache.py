"""The grid index kept on disk, so a new process does not rebuild what an earlier one built.

Building the raster of an edition costs a quarter of a second for the demo district and most of two seconds for
15,000 grids, plus the scipy import; loading it back costs milliseconds. A saved raster is named by a digest of
everything it is built from (the grid codes and their geometries as WKB, in code order, and the raster's own
parameters), not by edition or revision: the same grids give the same file in any database, any grids that differ
give another file, and no database identity, revision or clock can make a stale raster look current.

Beside the rasters, an edition file keeps the grids of one state of one edition in one database (codes, names,
communities, streets, geometries as WKB), named by a digest of the database URL and the edition's state (name,
revision, creation time to the microsecond): every change to an edition bumps its revision in the same
transaction, so a state names one content for good. A command that can learn the state cheaply (`store.peek`)
then builds its index from these files without reading the grids through the store at all.

The directory is set once per process by the edges (`gridmap serve`, the CLI, `create_app`) from the
`GRIDMAP_CACHE_DIR` setting; with none set, nothing is read or written. A file that cannot be read or written is
ignored (the raster is built as if there were no cache): the cache can only save time, never change an answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
# Bump when the raster's layout or the rules that fill it change: older files then simply stop matching.
FORMAT = b"gridmap-raster-3"
# Kept: the most recently used files up to this many and this many bytes in all (a raster of 15,000 grids is
# ~40 MB, of the demo district 15 MB); older ones are deleted when a new one is written.
KEEP_FILES = 16
KEEP_BYTES = 512 << 20
_FIELDS = ("params", "owner_or_outside", "candidate_start", "candidate_grid")
_GRID_FIELDS = ("text", "wkb", "wkb_ends")

_directory: Path | None = None


def use_directory(path: str | os.PathLike | None) -> None:
    """Keep rasters in this directory from now on (None or "": keep none)."""
    global _directory
    _directory = Path(path) if path else None


def directory() -> Path | None:
    """Return the directory rasters are kept in, or None."""
    return _directory


def digest(codes, wkbs, parameters: tuple) -> str:
    """Return the name of the raster built from these grids with these parameters."""
    h = hashlib.blake2b(FORMAT, digest_size=20)
    h.update(repr(parameters).encode())
    for code, wkb in zip(codes, wkbs, strict=True):
        h.update(code.encode("utf-8"))
        h.update(len(wkb).to_bytes(8, "little"))
        h.update(wkb)
    return h.hexdigest()


def load(name: str, fields: tuple[str, ...] = _FIELDS) -> dict[str, np.ndarray] | None:
    """Return the saved raster arrays of this name, or None when there are none (or they cannot be read)."""
    if _directory is None:
        return None
    path = _directory / f"{name}.npz"
    try:
        # The file opened here, not by numpy: numpy leaves it open when the archive inside is damaged.
        with path.open("rb") as handle, np.load(handle, allow_pickle=False) as saved:
            arrays = {field: saved[field] for field in fields}
    except FileNotFoundError:
        return None
    except Exception as exc:  # a truncated or foreign file: rebuild, and let the next save replace it
        log.warning("ignoring the unreadable grid index cache %s: %s", path, exc)
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # the newest use, so pruning keeps the rasters in use
    return arrays


def save(name: str, arrays: dict[str, np.ndarray], fields: tuple[str, ...] = _FIELDS) -> None:
    """Save a raster under its name, atomically (a reader sees the whole file or none), then prune old ones."""
    if _directory is None:
        return
    try:
        _directory.mkdir(parents=True, exist_ok=True)
        # Written beside its final name and renamed: processes building the same raster at once each rename a
        # complete file over the other's, and a reader never opens half of one.
        handle, temporary = tempfile.mkstemp(dir=_directory, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            np.savez(out, **{field: arrays[field] for field in fields})
        os.replace(temporary, _directory / f"{name}.npz")
        _prune()
    except OSError as exc:
        log.warning("cannot keep the grid index cache in %s: %s", _directory, exc)


def _prune() -> None:
    def used(path: Path) -> tuple[float, int]:
        try:
            found = path.stat()
        except FileNotFoundError:  # pruned meanwhile by another process
            return 0.0, 0
        return found.st_mtime, found.st_size

    kept_bytes = 0
    for number, (path, (_, size)) in enumerate(
        sorted(((p, used(p)) for p in _directory.glob("*.npz")), key=lambda item: item[1][0], reverse=True)
    ):
        kept_bytes += size
        if number >= KEEP_FILES or (number >= 2 and kept_bytes > KEEP_BYTES):
            path.unlink(missing_ok=True)


def _edition_name(url: str, state: tuple) -> str:
    return "edition-" + hashlib.blake2b(repr((FORMAT, url, tuple(state))).encode(), digest_size=20).hexdigest()


def save_grids(url: str, state: tuple, codes, names, community_codes, street_codes, wkbs) -> None:
    """Keep the grids of an edition at this state (as an index was built from them)."""
    if _directory is None:
        return
    import json

    text = json.dumps([list(codes), list(names), list(community_codes), list(street_codes)], ensure_ascii=False)
    ends = np.cumsum([len(w) for w in wkbs], dtype=np.int64)
    arrays = {
        "text": np.frombuffer(text.encode("utf-8"), dtype=np.uint8),
        "wkb": np.frombuffer(b"".join(wkbs), dtype=np.uint8),
        "wkb_ends": ends,
    }
    save(_edition_name(url, state), arrays, _GRID_FIELDS)


def load_grids(url: str, state: tuple) -> tuple[list, list, list, list, list[bytes]] | None:
    """Return (codes, names, community codes, street codes, WKB) kept for this state, or None."""
    saved = load(_edition_name(url, state), _GRID_FIELDS)
    if saved is None:
        return None
    import json

    try:
        codes, names, communities, streets = json.loads(saved["text"].tobytes().decode("utf-8"))
        blob, ends = saved["wkb"].tobytes(), saved["wkb_ends"].tolist()
        wkbs = [blob[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]
        if not (len(codes) == len(names) == len(communities) == len(streets) == len(wkbs)):
            raise ValueError("columns of different lengths")
    except Exception as exc:  # damaged: build from the database as if nothing were kept
        log.warning("ignoring the damaged grid index cache of %s: %s", state, exc)
        return None
    return codes, names, communities, streets, wkbs
