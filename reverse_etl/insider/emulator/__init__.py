"""A local, strict emulator of the Insider One API (see /work/shared/insider-api.md).

``Emulator`` runs it in-process in a background thread (tests, notebooks);
``serve`` runs it blocking (``reverse-etl emulator``). Module map: ``app`` routes
and UCD endpoints, ``pipeline`` faults/auth/limits/log per request, ``validation``
row rules, ``store`` profile state, ``faults``, ``limits``, ``segments`` (FPS),
``export`` (raw data export), ``admin`` (``/_emulator/``), ``server`` (runners).
"""

from __future__ import annotations

from .server import Emulator, main, serve

__all__ = ["Emulator", "main", "serve"]
