"""reverse_etl: sync warehouse models into Insider One, sending only what changed."""

from __future__ import annotations

__version__ = "0.1.0"
