"""``reverse-etl audit``: what Insider really holds, compared with the model, and repaired.

- :mod:`.compare`: the DuckDB tables and canonical comparison (numbers, timestamps,
  arrays, booleans, NULL vs absent);
- :mod:`.profiles`: a sample read through the profile endpoint, within its quota;
- :mod:`.export`: a full read through the raw data export;
- :mod:`.repair`: the drifted keys diffed against Insider's observed values, for a
  normal journaled run;
- :mod:`.core`: one audit, start to finish; :mod:`.result`: what it found.
"""

from __future__ import annotations

from .core import audit_sync
from .repair import Rebase
from .result import AuditResult

__all__ = ["AuditResult", "Rebase", "audit_sync"]
