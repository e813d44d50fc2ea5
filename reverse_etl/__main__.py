"""``python -m reverse_etl`` is the ``reverse-etl`` command."""

from __future__ import annotations

from reverse_etl.cli import main

main()
