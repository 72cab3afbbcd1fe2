"""Files of points located in bulk, in arrays: read, check, convert, locate and write without a per-row loop.

The CSV is read and written by pyarrow in blocks (a million rows in a few hundred milliseconds), every column
passes through as text, the coordinate checks and the GCJ-02/BD-09 conversions run on whole arrays, and the
index answers a block at once. A row that cannot be used keeps its place and gets an `error`; the run goes on.
Points in no grid get the nearest grid and its geodesic distance in metres.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from gridmap import crs as crs_module
from gridmap.errors import InvalidInput

from .index import GridIndex

OUTPUT_COLUMNS = (
    "grid_code",
    "community_code",
    "street_code",
    "ambiguous",
    "nearest_code",
    "nearest_distance_m",
    "error",
)
BLOCK_BYTES = 8 << 20  # rows are located and written this many bytes of input at a time
WHOLE_FILE_BYTES = 256 << 20  # files up to this size are read at once (on every core); larger ones are streamed
HEAD_BYTES = 1 << 20  # the header and the encoding are judged from this much of the file
# A coordinate as people write them: optional sign, digits with an optional decimal point, optional exponent.
_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"


def locate_csv(
    index: GridIndex | Future,
    input_path: Path,
    output_path: Path,
    *,
    columns: tuple[str, str, str] = ("id", "lon", "lat"),
    crs: str = "wgs84",
    progress: Callable[[int], object] | None = None,
    warn: Callable[[str], object] | None = None,
) -> dict[str, int]:
    """Locate every row of a CSV file (UTF-8 or GBK) and write it back with the grid columns added.

    `index` may be a Future of the index, so it can be built while the rows are read.
    A line with the wrong number of fields cannot be written back in its place: it is left out, counted and
    named through `warn` (the first 20).
    """
    import pyarrow as pa

    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.exists():
        raise InvalidInput(f"{input_path}: no such file")
    crs = crs_module.canonical_crs(crs)
    header, encoding = _header(input_path)
    id_column, lon_column, lat_column = columns
    missing = [c for c in (id_column, lon_column, lat_column) if c not in header]
    if missing:
        raise InvalidInput(
            f"{input_path.name}: no column {', '.join(missing)}; its columns are: {', '.join(header) or '(none)'}"
        )
    if len(set(header)) != len(header):
        raise InvalidInput(f"{input_path.name}: a column name appears twice in the header")
    out_names = header + [c for c in OUTPUT_COLUMNS if c not in header]
    # Written beside the output and renamed at the end: a run that fails leaves no half-written file behind.
    partial = output_path.with_name(output_path.name + ".partial")
    try:
        try:
            counts, skipped = _run(index, input_path, partial, header, encoding, out_names, columns, crs, progress)
        except pa.ArrowInvalid as exc:
            # The encoding was judged from the head of the file; a UTF-8 head can hide a GBK body.
            if encoding != "utf8" or "UTF8" not in str(exc):
                raise
            encoding = "gb18030"
            counts, skipped = _run(index, input_path, partial, header, encoding, out_names, columns, crs, progress)
        partial.replace(output_path)
    except UnicodeDecodeError:
        raise InvalidInput(f"{input_path.name}: neither UTF-8 nor GBK/GB18030 text") from None
    except pa.ArrowInvalid as exc:
        raise InvalidInput(f"{input_path.name}: not a CSV file gridmap can read ({exc})") from None
    finally:
        partial.unlink(missing_ok=True)
    for line in skipped[:20] if warn is not None else ():
        warn(f"skipped {line}")
    return {
        "rows": counts["rows"],
        "in a grid": counts["located"],
        "in no grid": counts["outside"],
        "ambiguous": counts["ambiguous"],
        "errors": counts["errors"],
        "malformed lines skipped": len(skipped),
    }


def _run(index, input_path, partial, header, encoding, out_names, columns, crs, progress):
    """Read, locate and write the whole file once; return the counts and the lines skipped."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    _, lon_column, lat_column = columns
    counts: Counter[str] = Counter()
    skipped: list[str] = []  # before the reader: it parses its first block at once
    # Every column is read as text and written back as it came: no number reformatted, no code loses a zero.
    options = {
        "read_options": pacsv.ReadOptions(column_names=header, skip_rows=1, encoding=encoding, block_size=BLOCK_BYTES),
        "convert_options": pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header}, strings_can_be_null=False
        ),
        "parse_options": pacsv.ParseOptions(invalid_row_handler=lambda row: _skip(row, skipped)),
    }
    if input_path.stat().st_size <= WHOLE_FILE_BYTES:
        # Read at once, every block parsed on its own core; the streaming reader keeps memory bounded on one.
        batches = pacsv.read_csv(input_path, **options).to_batches()
    else:
        batches = pacsv.open_csv(input_path, **options)
    # Each block is written in a second thread while the next one is located (both release the GIL): one block
    # waits to be written at a time, so memory holds at most two blocks beyond what was read.
    with open(partial, "wb") as out, ThreadPoolExecutor(1) as writer:
        out.write(_header_line(out_names))
        pending: Future | None = None
        for batch in batches:
            table = _located(index, batch, out_names, lon_column, lat_column, crs, counts)
            if pending is not None:
                pending.result()
            pending = writer.submit(_write, pa, pacsv, out, table)
            if progress is not None:
                progress(batch.num_rows)
        if pending is not None:
            pending.result()
    return counts, skipped


def _header_line(names: list[str]) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerow(names)
    return text.getvalue().encode("utf-8")


def _write(pa, pacsv, out, table) -> None:
    """Write one block of rows, each value quoted only when it must be (a comma, quote or line break in it)."""
    start = out.tell()
    try:  # "needed" would quote every text value, tripling the bytes of a file of codes and numbers
        pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="none", batch_size=16384))
    except pa.ArrowInvalid:  # some value needs quotes: write the block again, quoting its text
        out.seek(start)
        out.truncate()
        pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="needed", batch_size=16384))


def _skip(row, skipped: list[str]) -> str:
    # A line with the wrong number of fields cannot be written back beside the others: it is left out and named
    # by its line number when the reader knows it, and by its text.
    where = f"line {row.number}" if row.number is not None else "a line"
    text = row.text if len(row.text) <= 80 else row.text[:77] + "..."
    skipped.append(f"{where} with {row.actual_columns} fields where the header has {row.expected_columns}: {text!r}")
    return "skip"


def _header(path: Path) -> tuple[list[str], str]:
    """Return the column names and the encoding (UTF-8, or GB18030 when the head of the file is not UTF-8)."""
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
        if not head.strip() and not handle.read().strip():  # only whitespace: read on, but not into memory at once
            raise InvalidInput(f"{path.name}: the file is empty")
    try:  # a multi-byte character cut at the end of the head is not an error
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
        encoding = "utf8"
    except UnicodeDecodeError:  # Chinese exports: GBK, which GB18030 contains; bad bytes fail while reading
        text, encoding = head.decode("gb18030", errors="replace"), "gb18030"
    first = next(csv.reader(io.StringIO(text, newline="")), [])
    return [name.strip() for name in first], encoding


def _coordinates(column) -> np.ndarray:
    """Return a text column as float64, NaN where it is not a number."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:  # the usual file: every value a plain number, converted in one pass
        values = pc.cast(column, pa.float64())
    except pa.ArrowInvalid:
        numeric = pc.match_substring_regex(column, _NUMBER)
        nulls = pa.nulls(len(column), pa.string())  # not `None`: making a scalar of it imports pandas
        values = pc.cast(pc.if_else(numeric, pc.utf8_trim_whitespace(column), nulls), pa.float64())
    # Straight from the Arrow buffer: converting an array with nulls (or filling them) goes through pandas,
    # whose import alone costs more than a million rows here.
    numbers = np.frombuffer(values.buffers()[1], dtype=np.float64)[values.offset : values.offset + len(values)].copy()
    if values.null_count:  # the validity bitmap, one bit a value, least significant first
        bits = np.unpackbits(np.frombuffer(values.buffers()[0], dtype=np.uint8), bitorder="little")
        numbers[~bits[values.offset : values.offset + len(values)].astype(bool)] = np.nan
    return numbers


def _take(pa, texts: list, positions: np.ndarray, where: np.ndarray):
    """Return texts[positions] as a string column, empty where `where` is False (one C++ take, no Python loop).

    A dictionary column would skip the copy, but the CSV writer spells it out more slowly than it copies."""
    return _strings(pa, ["", *(t or "" for t in texts)]).take(_integers(pa, np.where(where, positions + 1, 0)))


def _located(index: GridIndex, batch, out_names, lon_column, lat_column, crs: str, counts: Counter):
    """Return one block of rows with the grid columns filled in."""
    import pyarrow as pa

    if not isinstance(index, GridIndex):
        index = index.result()  # built in the background while the first block was read
    raw_lon, raw_lat = batch.column(lon_column), batch.column(lat_column)
    lons, lats = _coordinates(raw_lon), _coordinates(raw_lat)
    not_numbers = np.isnan(lons) | np.isnan(lats)
    problems = crs_module.classify_lonlat(lons, lats)
    bad = not_numbers | (problems != "")
    good = ~bad
    if crs in ("gcj02", "bd09") and good.any():
        lons[good], lats[good] = crs_module.to_wgs84(lon=lons[good], lat=lats[good], crs=crs)
    lons[bad], lats[bad] = np.nan, np.nan
    result = index.locate_many(lons, lats)
    grid = result.grid
    located, outside = (grid >= 0) & good, (grid < 0) & good
    has_nearest = outside & (result.nearest >= 0)
    flags = np.where(good, np.where(result.ambiguous, 1, 2), 0)
    added = {
        "grid_code": _take(pa, index.codes, grid, located),
        "community_code": _take(pa, index.community_codes, grid, located),
        "street_code": _take(pa, index.street_codes, grid, located),
        "ambiguous": _strings(pa, ["", "true", "false"]).take(_integers(pa, flags)),
        "nearest_code": _take(pa, index.codes, result.nearest, has_nearest),
        "nearest_distance_m": _floats(pa, np.round(result.nearest_distance_m, 2), has_nearest),
        "error": _messages(pa, bad, not_numbers, problems, raw_lon, raw_lat),
    }
    columns = [added[name] if name in added else batch.column(name) for name in out_names]
    counts["rows"] += batch.num_rows
    counts["errors"] += int(bad.sum())
    counts["located"] += int(located.sum())
    counts["outside"] += int(outside.sum())
    counts["ambiguous"] += int((result.ambiguous & good).sum())
    return pa.Table.from_arrays(columns, names=out_names)


def _messages(pa, bad: np.ndarray, not_numbers: np.ndarray, problems: np.ndarray, raw_lon, raw_lat):
    """Return the `error` column: empty for good rows, what is wrong (as the one-point checks say it) otherwise."""
    where = np.flatnonzero(bad)
    messages = []
    lon_text = raw_lon.take(_integers(pa, where)).to_pylist()
    lat_text = raw_lat.take(_integers(pa, where)).to_pylist()
    for position, lon, lat in zip(where.tolist(), lon_text, lat_text, strict=True):
        if not_numbers[position]:
            messages.append(f"lon={lon!r}, lat={lat!r} is not a pair of numbers")
        else:
            messages.append(f"lon={float(lon):g}, lat={float(lat):g} {crs_module.PROBLEMS[problems[position]]}")
    positions = np.zeros(len(bad), dtype=np.int64)
    positions[where] = np.arange(len(where))
    return _take(pa, messages, positions, bad)


# Arrow arrays made from their buffers: `pa.array` imports pandas on first use (to check for its types), which
# costs more than locating a million points.
def _strings(pa, texts: list[str]):
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return pa.StringArray.from_buffers(len(encoded), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded)))


def _integers(pa, values: np.ndarray):
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def _floats(pa, values: np.ndarray, valid: np.ndarray):
    values = np.ascontiguousarray(values, dtype=np.float64)
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.float64(), len(values), [bitmap, pa.py_buffer(values)])
