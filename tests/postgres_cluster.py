"""A throwaway PostgreSQL cluster for tests and benches: initdb/pg_ctl, a free 127.0.0.1 port.

Shared by the warehouse engine's and the write-back's tests (one cluster per session,
one database per test) and by bench/warehouse_bench.py. As root, the server runs as
the ``postgres`` user (PostgreSQL refuses root).
"""

from __future__ import annotations

import contextlib
import glob
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

import pytest


def pg_bin(name: str) -> str | None:
    """A PostgreSQL program: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


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
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
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


@contextlib.contextmanager
def session_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    """The body of a session fixture: skip when psycopg or PostgreSQL is missing, else a cluster."""
    pytest.importorskip("psycopg")
    if not pg_bin("initdb") or not pg_bin("pg_ctl"):
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed (.ci/run installs them)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root with no `postgres` user to run PostgreSQL as")
    with running_cluster(tmp_path_factory.mktemp("pg")) as cluster:
        yield cluster
