"""What an audit found (and, with a repair, what the repair run did)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from reverse_etl.run.results import SyncResult

EXIT_DRIFTED = 3


@dataclass
class AuditResult:
    """One sync's audit: how Insider was read, what differs, and the repair (if any)."""

    sync: str
    method: str
    """``sample`` (profile reads) or ``full`` (raw export)."""
    model_rows: int = 0
    """Valid rows of the model (invalid ones are never sent, so never audited)."""
    invalid_rows: int = 0
    checked: int = 0
    """Users compared: the sample, or every model row and removed key (full)."""
    found: int = 0
    """Of those, how many Insider holds."""
    drifted_users: int = 0
    not_in_model: int = 0
    """Full audit: profiles of the exported segment whose key the model does not have. Not
    drift: the snapshot forgets a removed key once its ``on_removed`` is acknowledged, so a
    user another source created cannot be told from one the sync removed."""
    counts: dict[str, int] = field(default_factory=dict)
    """Users per drift kind: missing, removed_present, identifier, attribute."""
    fields: dict[str, int] = field(default_factory=dict)
    """Differences per field (``attributes.city``: 3)."""
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """A few differences per kind: key, field, model value, Insider's value (JSON text)."""
    cost: dict[str, Any] = field(default_factory=dict)
    """What Insider's quotas paid: profile reads and quota units, or the export."""
    not_compared: list[str] = field(default_factory=list)
    """Fields this method cannot read back (custom identifiers in a sample)."""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    repair: SyncResult | None = None
    """The repair run (``repair=True``), or its plan (dry run) when drift was found."""
    repaired: bool = False
    """True when ``repair`` is a run (not a plan)."""

    @property
    def drifted(self) -> bool:
        """True when anything differs."""
        return self.drifted_users > 0

    @property
    def exit_code(self) -> int:
        """0 equal (or repaired in full), 3 drifted, else the repair run's own failure code."""
        if not self.drifted:
            return 0
        if self.repaired and self.repair is not None:
            return self.repair.exit_code
        return EXIT_DRIFTED

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        data = asdict(self)
        data["exit_code"] = self.exit_code
        data["drifted"] = self.drifted
        return data
