"""A dbt Cloud webhook runs only the syncs whose models that job rebuilt; runs become OTel traces."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson
import pytest
from project_factory import ProjectUnderTest
from serve_factory import DBT_SECRET, make_service

from reverse_etl.insider.emulator import Emulator
from reverse_etl.serve.server import running

DBT_TOKEN = "dbt-cloud-api-token-123"


def _node(name: str) -> dict[str, object]:
    return {"unique_id": f"model.shop.{name}", "name": name, "package_name": "shop", "resource_type": "model",
            "database": "warehouse", "schema": "main", "alias": name, "relation_name": None, "tags": [],
            "config": {"materialized": "table", "tags": [], "quoting": {}},
            "depends_on": {"macros": [], "nodes": []}, "version": None, "latest_version": None,
            "raw_code": "select 1"}


def _with_dbt(project: ProjectUnderTest) -> None:
    manifest = {"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json",
                             "adapter_type": "duckdb", "project_name": "shop",
                             "quoting": {"database": True, "schema": True, "identifier": True}},
                "nodes": {f"model.shop.{n}": _node(n) for n in ("customers", "customer_cities")},
                "sources": {}, "macros": {}, "disabled": {}, "parent_map": {}, "child_map": {}}
    # The syncs' models become dbt's: tables in the warehouse, named by the manifest.
    from project_factory import CUSTOMERS_SQL
    from serve_factory import CITIES_SQL

    project.sql(f"CREATE TABLE customers AS {CUSTOMERS_SQL}")
    project.sql(f"CREATE TABLE customer_cities AS {CITIES_SQL}")
    for sql in (project.root / "models").glob("*.sql"):
        sql.unlink()
    (project.root / "dbt" / "target").mkdir(parents=True)
    (project.root / "dbt" / "target" / "manifest.json").write_text(json.dumps(manifest))
    with project.config() as config:
        config["dbt"] = {"project_dir": "dbt"}


class _DbtCloud(BaseHTTPRequestHandler):
    """dbt Cloud's artifact endpoint: run 4242 rebuilt customers only."""

    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        _DbtCloud.seen.append((self.path, self.headers.get("Authorization")))
        if self.path != "/api/v2/accounts/7/runs/4242/artifacts/run_results.json":
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps({"metadata": {"generated_at": "2026-01-01T00:00:00Z", "invocation_id": "x"},
                           "results": [{"unique_id": "model.shop.customers", "status": "success",
                                        "message": "OK", "timing": []}],
                           "elapsed_time": 1.0, "args": {"which": "build"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def dbt_cloud() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DbtCloud)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _DbtCloud.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _signed(run_id: str) -> tuple[bytes, str]:
    body = orjson.dumps({"accountId": 7, "eventType": "job.run.completed",
                         "data": {"jobId": "1", "runId": run_id, "runStatus": "Success"}})
    return body, hmac.new(DBT_SECRET.encode(), body, hashlib.sha256).hexdigest()


def test_dbt_cloud_webhook_runs_the_syncs_of_the_models_the_job_rebuilt(
        project: ProjectUnderTest, insider_emulator: Emulator, dbt_cloud: str) -> None:
    _with_dbt(project)
    project.env["DBT_CLOUD_API_TOKEN"] = DBT_TOKEN
    service = make_service(project, dbt_cloud_url=dbt_cloud)
    body, signature = _signed("4242")
    with running(service) as url:
        answer = httpx.post(f"{url}/api/webhooks/dbt-cloud", content=body, params={"wait": "true"},
                            headers={"Authorization": signature}, timeout=120)
        cities_sent = "home_city" in (insider_emulator.profile(uuid="u1")["attributes"].get("custom") or {})  # type: ignore[index]
        missing_body, missing_sig = _signed("999")
        missing = httpx.post(f"{url}/api/webhooks/dbt-cloud", content=missing_body, params={"wait": "true"},
                             headers={"Authorization": missing_sig}, timeout=120)
    assert answer.status_code == 200, answer.text
    outcomes = {r["sync"]: (r["outcome"], r["message"]) for r in answer.json()["runs"]}
    assert outcomes["customers"][0] == "success", outcomes
    assert outcomes["cities"][0] == "skipped" and "customer_cities" in outcomes["cities"][1]
    assert "run_results.json" in answer.json()["note"]
    assert _DbtCloud.seen[0] == ("/api/v2/accounts/7/runs/4242/artifacts/run_results.json", f"Token {DBT_TOKEN}")
    assert insider_emulator.profile(uuid="u1")["attributes"]["name"] == "Name1"  # type: ignore[index]
    assert not cities_sent  # the job did not rebuild customer_cities: nothing of it went out
    # No artifact for that run: the answer says so, and the syncs run unconditionally.
    assert "dbt Cloud answered 404" in missing.json()["note"]
    assert {r["sync"]: r["outcome"] for r in missing.json()["runs"]} == {"customers": "success", "cities": "success"}
    assert DBT_TOKEN not in answer.text + missing.text


def test_runs_and_stages_become_spans_when_an_exporter_is_configured(
        project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from reverse_etl.serve.tracing import tracing_hook

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    service = make_service(project, hooks=[tracing_hook(provider)])
    insider_emulator.set_faults(reject=["u2"])
    service.submit("customers", "api")
    service.queue.run_pending()
    spans = exporter.get_finished_spans()
    runs = [s for s in spans if s.name == "reverse_etl.run"]
    assert len(runs) == 1
    run = runs[0]
    record = service.history("customers")[-1]
    assert run.attributes["reverse_etl.run_id"] == record.run_id  # type: ignore[index]
    assert run.attributes["reverse_etl.outcome"] == "partial"  # type: ignore[index]
    assert run.attributes["reverse_etl.rows.rejected"] == 1  # type: ignore[index]
    assert run.status.status_code.name == "ERROR"
    stages = {s.attributes["reverse_etl.stage"]: s for s in spans if s.name == "reverse_etl.stage"}  # type: ignore[index]
    assert set(stages) >= {"source", "diff", "deliver", "commit"}
    for stage in stages.values():
        assert stage.parent is not None and stage.parent.span_id == run.context.span_id
        assert stage.context.trace_id == run.context.trace_id


def test_no_tracing_unless_configured_and_console_exporter_builds(project: ProjectUnderTest,
                                                                  tmp_path: Path) -> None:
    assert len(make_service(project).hooks) == 1  # metrics only
    assert len(make_service(project, traces="console").hooks) == 2
