"""Repair: the drifted keys diffed against what Insider was seen to hold.

The audit writes ``observed.parquet``: per drifted key, ``found`` and, per
tracked field, the value Insider holds where it differs from the model (else
the model's own value). :class:`Rebase` runs inside a normal run (or plan) of
the sync, right after the delta keys are found, and makes that the baseline:

- ``snap``: the drifted keys' rows replaced by the observed ones (a key missing
  at Insider has none: it is a new user, sent in full); every other row as it was;
- ``delta_keys``: the drifted keys still in the model, and no others (a model
  change the audit did not look at waits for the next run, its snapshot row intact);
- ``present``: also every undrifted key of the snapshot, so only drifted removed
  keys get their ``on_removed``.

The mode then builds exactly the upserts, attribute deletes and identity updates
that bring Insider back to the model; delivery, journal, commit and ledger are a
run's own, and the snapshot ends up holding what Insider acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from reverse_etl.diff import compare as diff
from reverse_etl.diff.sqltext import ident, literal
from reverse_etl.insider.fields import Field
from reverse_etl.state.digests import DRIFT_DIGEST

# An observed row's digest is DRIFT_DIGEST: never a row's md5, so the key is diffed.


def write_observed(con: duckdb.DuckDBPyConnection, tracked: Sequence[Field], audiences: Sequence[str],
                   path: Path) -> int:
    """``observed.parquet`` for the keys of ``audit_drift`` (see the module docstring).

    ``audiences``: names of boolean audience fields, whose ``false`` at Insider is
    "not a member", NULL in a snapshot.
    """
    def value(f: Field) -> str:
        name = ident(f.name)
        drifted = (f"EXISTS (SELECT 1 FROM audit_drift d WHERE d.key = p.key "
                   f"AND (d.field = {literal(f.label)} OR d.kind = 'removed_present'))")
        held = f"nullif(i.{name}, 'false')" if f.name in audiences else f"i.{name}"
        return f"CASE WHEN {drifted} THEN {held} ELSE p.{name} END AS {name}"

    have = {name for name, *_ in con.execute("DESCRIBE insider_side").fetchall()}
    # A field the audit could not read (a custom identifier in a sample) keeps the model's value.
    values = ", ".join(value(f) if f.name in have else f"p.{ident(f.name)}" for f in tracked)
    con.execute(f"""
        COPY (SELECT p.key, coalesce(i.found, FALSE) AS found, {values}
              FROM audit_population p LEFT JOIN insider_side i ON i.kv = p.kv
              WHERE p.key IN (SELECT key FROM audit_drift))
        TO {literal(str(path))} (FORMAT parquet)""")
    return int(con.execute(f"SELECT count(*) FROM read_parquet({literal(str(path))})").fetchall()[0][0])


@dataclass(frozen=True)
class Rebase:
    """The runner hook (:data:`reverse_etl.run.runner.Rebase`) of a repair."""

    observed: Path
    tracked: tuple[Field, ...]

    def __call__(self, con: duckdb.DuckDBPyConnection) -> str:
        """Make the observed rows the baseline of the drifted keys; a note for the result."""
        src = f"read_parquet({literal(str(self.observed))})"
        cols = ", ".join(ident(f.name) for f in self.tracked)
        con.execute(f"CREATE OR REPLACE TEMP TABLE audit_keys AS SELECT key, found, {cols} FROM {src}")
        con.execute(f"""
            CREATE OR REPLACE TABLE audit_snap AS
            SELECT key, {cols}, digest FROM snap s WHERE NOT EXISTS (SELECT 1 FROM audit_keys a WHERE a.key = s.key)
            UNION ALL
            SELECT key, {cols}, {DRIFT_DIGEST} FROM audit_keys WHERE found""")
        diff.replace_snapshot(con, "audit_snap")
        con.execute("""
            CREATE OR REPLACE TABLE delta_keys AS
            SELECT DISTINCT c.key FROM cur_raw c JOIN audit_keys a ON a.key = c.key
            WHERE NOT EXISTS (SELECT 1 FROM dups d WHERE d.key = c.key)""")
        con.execute("""
            CREATE OR REPLACE VIEW present AS
            SELECT key FROM cur_raw WHERE key IS NOT NULL
            UNION ALL
            SELECT key FROM snap s WHERE NOT EXISTS (SELECT 1 FROM audit_keys a WHERE a.key = s.key)""")
        n = con.execute("SELECT count(*) FROM audit_keys").fetchall()[0][0]
        return f"audit repair: {n} drifted key(s) diffed against what Insider was seen to hold"
