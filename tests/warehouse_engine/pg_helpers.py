"""Projects whose source is a database of the throwaway PostgreSQL cluster, with ``engine: warehouse``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postgres_cluster import PostgresCluster, running_cluster
from project_factory import ProjectUnderTest, base_config

__all__ = ["PgProject", "PostgresCluster", "make_pg_project", "running_cluster", "seed_pg_customers"]

PG_CUSTOMERS_SQL = """
select customer_id, email, first_name, city, lifetime_value, tags
from raw_customers
"""


def seed_pg_customers(pg: PostgresCluster, database: str, n: int) -> None:
    """``raw_customers`` with n deterministic rows (the same as project_factory's DuckDB ones)."""
    pg.sql(database, f"""
        DROP TABLE IF EXISTS raw_customers;
        CREATE TABLE raw_customers AS
        SELECT 'u' || i AS customer_id, 'user' || i || '@example.com' AS email,
               'Name' || i AS first_name, 'City' || (i % 7) AS city,
               (i * 10.5)::double precision AS lifetime_value, ARRAY['t' || (i % 3)] AS tags
        FROM generate_series(1, {n}) AS t(i);
        ALTER TABLE raw_customers ADD PRIMARY KEY (customer_id)
    """)


@dataclass
class PgProject(ProjectUnderTest):
    """A project whose source is a Postgres database, with ``engine: warehouse``."""

    pg: PostgresCluster | None = None
    database: str = ""

    def pg_sql(self, statement: str) -> list[tuple[Any, ...]]:
        assert self.pg is not None
        return self.pg.sql(self.database, statement)


def make_pg_project(root: Path, pg: PostgresCluster, api_url: str, rows: int = 50,
                    engine: str = "warehouse", **sync_overrides: Any) -> PgProject:
    """A project in ``root`` reading ``rows`` customers from a new Postgres database."""
    root.mkdir(parents=True, exist_ok=True)
    database = pg.create_database()
    seed_pg_customers(pg, database, rows)
    project = PgProject(root=root, env={"INSIDER_API_KEY": "test-key"}, pg=pg, database=database)
    project.write_model("customers", PG_CUSTOMERS_SQL)
    config = base_config(api_url, **sync_overrides)
    config["source"] = {"type": "sqlalchemy", "url": pg.url(database), "engine": engine}
    project.write_config(config)
    return project
