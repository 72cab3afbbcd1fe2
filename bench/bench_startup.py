"""How long the command line takes to answer: `gridmap --help` and `gridmap locate --lon --lat`, as a user runs them.

    .venv/bin/python bench/bench_startup.py [--runs 7]

The demo district is loaded into a scratch SpatiaLite file; each command runs --runs times in a new process and
the median and best wall times are printed beside the target (< 0.5 s), with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import GRIDMAP, load, load_demo


def wall(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"bench_startup: {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'demo.sqlite'}"
        load_demo(url)
        env = {**os.environ, "GRIDMAP_DATABASE_URL": url}
        commands = {
            "gridmap --help": [str(GRIDMAP), "--help"],
            "gridmap locate --lon --lat (in a grid)": [str(GRIDMAP), "locate", "--lon", "117.1222", "--lat", "39.1351"],
            "gridmap locate --lon --lat (in no grid)": [str(GRIDMAP), "locate", "--lon", "117.0", "--lat", "39.13"],
        }
        for label, command in commands.items():
            wall(command, env)  # the first run fills the OS's file cache
            times = [wall(command, env) for _ in range(args.runs)]
            print(
                f"  {label:<42} median {statistics.median(times):.3f} s, best {min(times):.3f} s "
                f"({args.runs} runs) — target < 0.5 s"
            )
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
