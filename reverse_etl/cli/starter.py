"""``reverse-etl init``: a starter project that validates and runs against the emulator."""

from __future__ import annotations

from pathlib import Path

from reverse_etl.errors import UsageError

SYNCS_YML = """\
# A starter project: a local DuckDB warehouse synced to the local Insider emulator.
# Start the emulator in another terminal:  reverse-etl emulator
# then:  cp .env.example .env && reverse-etl validate && reverse-etl plan && reverse-etl run
version: 1
source:
  type: duckdb
  path: warehouse.duckdb
destination:
  type: insider
  partner: local
  api_key: "{{ env_var('INSIDER_API_KEY') }}"
  api_base_url: "{{ env_var('INSIDER_API_URL', 'http://127.0.0.1:8787') }}"
  fps_base_url: "{{ env_var('INSIDER_API_URL', 'http://127.0.0.1:8787') }}"
state:
  path: .reverse_etl
syncs:
  - name: customers
    model: customers
    identifiers:
      uuid: customer_id
      email: email
    attributes:
      name: first_name
      city: city
"""

CUSTOMERS_SQL = """\
-- A model is a SELECT; this one builds its own rows so the project works at once.
-- Replace it with a query on your warehouse's tables.
select 'u' || i as customer_id,
       'user' || i || '@example.com' as email,
       'Name' || i as first_name,
       'City' || (i % 5) as city
from range(1, 11) t(i)
"""

GITIGNORE = """\
.reverse_etl/
.env
warehouse.duckdb
warehouse.duckdb.wal
"""

ENV_EXAMPLE = """\
# Copy to .env (never commit .env). The local emulator accepts 'local-key'.
INSIDER_API_KEY=local-key
"""

FILES = {
    "syncs.yml": SYNCS_YML,
    "models/customers.sql": CUSTOMERS_SQL,
    ".gitignore": GITIGNORE,
    ".env.example": ENV_EXAMPLE,
}


def write_starter(directory: Path) -> list[Path]:
    """Write the starter files into ``directory``; refuses to overwrite any of them."""
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory}: is a file; pass a directory to init")
    taken = [name for name in (*FILES, "warehouse.duckdb") if (directory / name).exists()]
    if taken:
        raise UsageError(f"{directory}: already holds {', '.join(taken)}; init writes only into a new project")
    written: list[Path] = []
    for name, text in FILES.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    warehouse = directory / "warehouse.duckdb"
    if not warehouse.exists():
        import duckdb

        duckdb.connect(str(warehouse)).close()  # an empty local warehouse for source.path
        written.append(warehouse)
    return written
