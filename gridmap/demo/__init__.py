"""The generated demo district, split by what each part makes:

- `district`: the boundaries (district, streets, communities, grids), their checks and GeoJSON files;
- `tiling`: the generic geometry steps the boundaries are built from;
- `gazetteer`: the standard address list (gazetteer.csv);
- `buildings`: the household register;
- `cases`: demo incidents.

Each draws from its own seed offset, so the same seed gives the same bytes whichever parts run.
`python -m gridmap.demo [OUTDIR]` regenerates the committed files.
"""
