"""The diff engine: mapping, vectorised encoding and validation, diff and fold, in DuckDB."""

from __future__ import annotations
