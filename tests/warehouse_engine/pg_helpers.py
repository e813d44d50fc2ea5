"""A throwaway PostgreSQL cluster (initdb/pg_ctl, a free port, a tmp dir) and projects whose
source is a database in it with ``engine: warehouse``."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from project_factory import ProjectUnderTest, base_config

PG_CUSTOMERS_SQL = """
select customer_id, email, first_name, city, lifetime_value, tags
from raw_customers
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _demote() -> Any:
    """initdb refuses to run as root: as root, run the server as the `postgres` user."""
    if os.geteuid() != 0:
        return None, None
    user = pwd.getpwnam("postgres")

    def become() -> None:
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    return become, user


@dataclass
class PostgresCluster:
    """A running cluster on 127.0.0.1: one database per test."""

    port: int
    data: Path

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres", user: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=user, dbname=database, autocommit=True)

    def sql(self, database: str, statement: str) -> list[tuple[Any, ...]]:
        with self.connect(database) as con, con.cursor() as cur:
            cur.execute(statement)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def create_database(self) -> str:
        name = f"db_{uuid.uuid4().hex[:10]}"
        self.sql("postgres", f"CREATE DATABASE {name}")
        return name


@contextlib.contextmanager
def running_cluster(workdir: Path) -> Iterator[PostgresCluster]:
    """Start a cluster (in ``workdir``, or as root in a fresh /tmp dir the postgres user may
    reach), yield it, stop it. Databases keep its users apart."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("initdb/pg_ctl not installed")
    preexec, user = _demote()
    if user is None:
        root = workdir
    else:
        # pytest's tmp dirs are private to root (0700): the postgres user could not reach one.
        root = Path(tempfile.mkdtemp(prefix="reverse_etl_pg_"))
        os.chown(root, user.pw_uid, user.pw_gid)
    data = root / "data"
    port = _free_port()
    subprocess.run([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                    "--locale=C.UTF-8"], check=True, capture_output=True, preexec_fn=preexec)
    subprocess.run([pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c shared_buffers=128MB -c max_connections=40", "start"],
                   check=True, capture_output=True, preexec_fn=preexec)
    try:
        yield PostgresCluster(port=port, data=data)
    finally:
        subprocess.run([pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True,
                       preexec_fn=preexec)
        if user is not None:
            shutil.rmtree(root, ignore_errors=True)


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
