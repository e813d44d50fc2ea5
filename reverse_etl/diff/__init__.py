"""The DuckDB workspace of a run: its tables, the two-pass diff, the fold, rejected rows."""
