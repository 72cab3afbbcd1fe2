"""`python -m gridmap.demo [OUTDIR]`: regenerate the demo district's boundaries and gazetteer."""

import sys
from pathlib import Path

from gridmap.demo.district import demo_boundary_dir, write_district
from gridmap.demo.gazetteer import write_gazetteer

if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else demo_boundary_dir()
    for level, path in write_district(target).items():
        print(f"{level}: {path}")
    print(f"gazetteer: {write_gazetteer(target)}")
