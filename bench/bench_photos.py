"""Photos from phones: how long checking one takes (decode, EXIF, display copy, thumbnail), and a whole report
with two photos through the API (multipart, storage, one transaction) on SpatiaLite with a photo directory.

    .venv/bin/python bench/bench_photos.py [--runs 5]

Photos are 12 MP (4000 × 3000, what most phones take) with noise, so they compress like real photos (~3–5 MB as
JPEG). The issue names no speed target; the figures show what one upload costs a 2-core server.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from shapely.geometry import box, mapping

from gridmap import boundaries, people
from gridmap.attachments import images
from gridmap.config import Settings
from gridmap.web import create_app


def photo(kind: str, rng: np.random.Generator) -> bytes:
    """Return a 12 MP photo-like image (a gradient with sensor noise) as JPEG or HEIC."""
    y, x = np.mgrid[0:3000, 0:4000]
    base = np.stack([x / 16 % 256, y / 12 % 256, (x + y) / 28 % 256], axis=-1)
    pixels = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    exif = Image.Exif()
    exif.get_ifd(0x8825).update({1: "N", 2: (39.0, 6.0, 54.0), 3: "E", 4: (117.0, 6.0, 18.0)})
    buffer = io.BytesIO()
    if kind == "heic":
        import pillow_heif

        pillow_heif.register_heif_opener()
        image.save(buffer, "HEIF", quality=80, exif=exif.tobytes())
    else:
        image.save(buffer, "JPEG", quality=92, exif=exif)
    return buffer.getvalue()


def timed_runs(function, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def one_grid_district(directory: Path, store) -> None:
    """Load a street, a community and one grid around (117.105, 39.115) through the real import path."""
    shape = mapping(box(117.10, 39.11, 117.11, 39.12))
    for level, code, parent in (("street", "120104001", ""), ("community", "120104001001", "120104001"),
                                ("grid", "120104001001001", "120104001001")):  # fmt: skip
        path = directory / f"{level}.geojson"
        feature = {"type": "Feature", "properties": {"code": code, "name": code, "parent_code": parent}}
        path.write_text(json.dumps({"type": "FeatureCollection", "features": [{**feature, "geometry": shape}]}))
        boundaries.commit_import(store, boundaries.plan_import(store, path, level=level))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}")
    rng = np.random.default_rng(17)
    samples = {kind: photo(kind, rng) for kind in ("jpeg", "heic")}
    for kind, data in samples.items():
        name = f"x.{kind}"
        times = timed_runs(lambda d=data, n=name: images.read_photo(d, filename=n, max_bytes=15_000_000), args.runs)
        checked = images.read_photo(data, filename=name, max_bytes=15_000_000)
        print(
            f"check one 12 MP {kind.upper()} of {len(data) / 1e6:.1f} MB: "
            f"median {statistics.median(times) * 1000:.0f} ms (min {min(times) * 1000:.0f}); "
            f"display {checked.width}×{checked.height} {len(checked.display) / 1e3:.0f} kB, "
            f"thumbnail {len(checked.thumb) / 1e3:.0f} kB"
        )
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        settings = Settings(
            database_url=f"sqlite:///{root / 'bench.sqlite'}", secret_key="bench", attachments=str(root / "photos")
        )
        app = create_app(settings)
        store = app.extensions["gridmap"].store
        one_grid_district(root, store)
        token = people.add_user(store, "worker", role="grid_worker", areas=["120104001001001"])
        client = app.test_client()
        form = {"title": "违章搭建", "category": "0101", "lon": "117.105", "lat": "39.115"}

        def report() -> None:
            files = [(io.BytesIO(samples["jpeg"]), "a.jpg"), (io.BytesIO(samples["jpeg"]), "b.jpg")]
            response = client.post(
                "/api/incidents",
                data={**form, "photos": files},
                headers={"Authorization": f"Bearer {token}"},
                content_type="multipart/form-data",
            )
            assert response.status_code == 201, response.get_data(as_text=True)
            response.close()

        times = timed_runs(report, args.runs)
        print(
            f"report with two 12 MP JPEG photos through the API (SpatiaLite, photo directory): "
            f"median {statistics.median(times) * 1000:.0f} ms (min {min(times) * 1000:.0f})"
        )
        store.close()
    print("targets: none named in the issue; limits chosen 15 MB a photo, 9 a request, 30 a case, 80 megapixels")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
