"""Helpers of tests/serve: a two-sync example-style project and its service over real HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from project_factory import ProjectUnderTest, make_project

from reverse_etl.insider.emulator import Emulator
from reverse_etl.serve import ServeOptions, build_service
from reverse_etl.serve.clock import Clock
from reverse_etl.serve.service import Service

TOKEN = "serve-test-token-5b1e"
DBT_SECRET = "dbt-webhook-secret-77"
GITHUB_SECRET = "github-webhook-secret-31"

CITIES_SQL = "select customer_id, city from raw_customers"


def two_sync_project(root: Path, api_url: str, rows: int = 12) -> ProjectUnderTest:
    """The factory's project plus a second sync, both scheduled (one itself, one by tag)."""
    project = make_project(root, api_url, rows=rows, schedule="0 * * * *", tags=["profiles"])
    project.write_model("customer_cities", CITIES_SQL)
    with project.config() as config:
        config["syncs"].append({"name": "cities", "model": "customer_cities",
                                "identifiers": {"uuid": "customer_id"}, "attributes": {"home_city": "city"},
                                "tags": ["daily"]})
        config["schedules"] = [{"select": "tag:daily", "cron": "30 6 * * *", "timezone": "Europe/Istanbul"}]
    project.env.update({"REVERSE_ETL_SERVE_TOKEN": TOKEN, "REVERSE_ETL_DBT_CLOUD_SECRET": DBT_SECRET,
                        "REVERSE_ETL_GITHUB_SECRET": GITHUB_SECRET})
    return project


@dataclass
class Served:
    """A project, its service and the base URL it answers on."""

    project: ProjectUnderTest
    service: Service
    url: str
    emulator: Emulator

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def trigger(self, sync: str, **params: Any) -> httpx.Response:
        with self.client() as c:
            return c.post(f"/api/syncs/{sync}/runs", params=params)


def make_service(project: ProjectUnderTest, clock: Clock | None = None, **options: Any) -> Service:
    """The service of ``project`` (schedules off unless asked: tests drive them with a clock)."""
    options.setdefault("schedules", False)
    return build_service(ServeOptions(project_dir=project.root, environ=project.env, **options), clock)
