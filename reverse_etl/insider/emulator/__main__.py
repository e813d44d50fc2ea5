"""``python -m reverse_etl.insider.emulator``: serve the emulator (see ``server.main``)."""

from __future__ import annotations

from .server import main

main()
