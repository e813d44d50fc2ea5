"""Build throwaway reverse_etl projects (syncs.yml, models, DuckDB warehouse) for tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import yaml

CUSTOMERS_SQL = """
select customer_id, email, first_name, city, lifetime_value, tags
from raw_customers
"""


@dataclass
class ProjectUnderTest:
    """A project directory plus handles to change its warehouse."""

    root: Path
    env: dict[str, str]

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        """Run SQL on the warehouse (e.g. to change rows between runs)."""
        with duckdb.connect(str(self.warehouse)) as con:
            return con.execute(statement).fetchall()

    @contextmanager
    def config(self) -> Iterator[dict[str, Any]]:
        """``with project.config() as c: c[...] = ...``: syncs.yml, written back on exit."""
        config = yaml.safe_load((self.root / "syncs.yml").read_text())
        yield config
        self.write_config(config)

    def write_config(self, config: dict[str, Any] | str) -> None:
        text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False, width=10**6)
        (self.root / "syncs.yml").write_text(text)

    def write_model(self, name: str, sql: str) -> None:
        (self.root / "models").mkdir(exist_ok=True)
        (self.root / "models" / f"{name}.sql").write_text(sql)


def seed_customers(path: Path, n: int) -> None:
    """``raw_customers`` with n deterministic rows."""
    with duckdb.connect(str(path)) as con:
        con.execute(f"""
            CREATE OR REPLACE TABLE raw_customers AS
            SELECT 'u' || i AS customer_id, 'user' || i || '@example.com' AS email,
                   'Name' || i AS first_name, 'City' || (i % 7) AS city,
                   (i * 10.5)::DOUBLE AS lifetime_value, ['t' || (i % 3)] AS tags
            FROM range(1, {n + 1}) t(i)
        """)


def base_config(api_url: str, **sync_overrides: Any) -> dict[str, Any]:
    """A one-sync config pointing at ``api_url`` (the emulator)."""
    sync: dict[str, Any] = {
        "name": "customers",
        "model": "customers",
        "identifiers": {"uuid": "customer_id", "email": "email"},
        "attributes": {"name": "first_name", "city": "city", "ltv": "lifetime_value", "tags": "tags"},
    }
    sync.update(sync_overrides)
    return {
        "version": 1,
        "source": {"type": "duckdb", "path": "warehouse.duckdb"},
        "destination": {
            "type": "insider",
            "partner": "acme",
            "api_key": '{{ env_var("INSIDER_API_KEY") }}',
            "api_base_url": api_url,
            "fps_base_url": api_url,
            "concurrency": 4,
        },
        "syncs": [sync],
    }


def make_project(root: Path, api_url: str = "http://127.0.0.1:9", rows: int = 10,
                 **sync_overrides: Any) -> ProjectUnderTest:
    """A project in ``root`` with ``rows`` customers and one sync."""
    root.mkdir(parents=True, exist_ok=True)
    project = ProjectUnderTest(root=root, env={"INSIDER_API_KEY": "test-key"})
    project.write_model("customers", CUSTOMERS_SQL)
    project.write_config(base_config(api_url, **sync_overrides))
    seed_customers(project.warehouse, rows)
    return project
