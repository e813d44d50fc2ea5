"""reverse_etl: sync warehouse models into Insider One, sending only what changed.

The Python API mirrors the command line::

    import reverse_etl
    result = reverse_etl.run("my_project", select=["tag:daily"])
    if result.exit_code:
        ...
"""

from __future__ import annotations

from reverse_etl.api import (
    audit,
    history,
    load_project,
    lookup,
    plan,
    rejected_rows,
    reset,
    run,
    validate,
)
from reverse_etl.errors import (
    AuthenticationError,
    ConfigError,
    DeliveryError,
    LockedError,
    ReverseEtlError,
    SourceError,
    StateError,
    UsageError,
)
from reverse_etl.insider.audit import AuditResult
from reverse_etl.insider.config import InsiderProject as Project
from reverse_etl.insider.pull.api import PullResult, pull
from reverse_etl.run.results import RunResult, SyncResult

__version__ = "0.1.0"

__all__ = [
    "AuditResult",
    "AuthenticationError",
    "ConfigError",
    "DeliveryError",
    "LockedError",
    "Project",
    "PullResult",
    "ReverseEtlError",
    "RunResult",
    "SourceError",
    "StateError",
    "SyncResult",
    "UsageError",
    "audit",
    "history",
    "load_project",
    "lookup",
    "plan",
    "pull",
    "rejected_rows",
    "reset",
    "run",
    "validate",
]
