"""/metrics parsed by prometheus_client matches the ledger; row lookup says what Insider answered."""

from __future__ import annotations

from collections import Counter

import httpx
from prometheus_client.parser import text_string_to_metric_families
from serve_factory import Served

import reverse_etl


def _samples(served: Served) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{served.url}/metrics", timeout=30).text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _partial_then_success(served: Served) -> None:
    served.emulator.set_faults(reject=["u3"])
    assert served.trigger("customers", wait="true").json()["outcome"] == "partial"
    served.emulator.set_faults({})
    assert served.trigger("cities", wait="true").json()["outcome"] == "success"
    served.project.sql("UPDATE raw_customers SET first_name = 'Changed' WHERE customer_id IN ('u1', 'u2')")
    served.trigger("customers", wait="true")


def test_metrics_counters_match_the_ledger(served: Served) -> None:
    _partial_then_success(served)
    # A CLI run counts too: the ledger is the truth, whoever ran.
    reverse_etl.run(served.project.root, select=["cities"], environ=served.project.env)
    samples = _samples(served)
    ledger = reverse_etl.history(served.project.root, limit=0, environ=served.project.env)
    by_outcome = Counter((r.sync, r.outcome) for r in ledger)
    assert by_outcome == {("customers", "partial"): 1, ("customers", "success"): 1, ("cities", "success"): 2}
    for (sync, outcome), n in by_outcome.items():
        assert samples["reverse_etl_runs_total", (("outcome", outcome), ("sync", sync))] == n
    for sync in ("customers", "cities"):
        for kind in ("acked", "rejected", "to_send", "added", "changed"):
            expected = sum(r.counts.get(kind, 0) for r in ledger if r.sync == sync)
            assert samples["reverse_etl_rows_total", (("kind", kind), ("sync", sync))] == expected, (sync, kind)
        requests = sum(r.details["requests"] for r in ledger if r.sync == sync)
        assert samples["reverse_etl_requests_total", (("sync", sync),)] == requests > 0
        assert samples["reverse_etl_seconds_since_last_success", (("sync", sync),)] >= 0
    assert samples["reverse_etl_rows_total", (("kind", "rejected"), ("sync", "customers"))] == 1
    # This server made three runs of customers+cities (the CLI run is not its own).
    assert samples["reverse_etl_run_seconds_count", (("sync", "customers"),)] == 2
    assert samples["reverse_etl_stage_seconds_count", (("stage", "deliver"), ("sync", "cities"))] == 1
    assert samples["reverse_etl_serve_triggers_total", (("trigger", "api"),)] == 3


def test_refused_triggers_are_counted(served: Served) -> None:
    httpx.post(f"{served.url}/api/syncs/customers/runs", timeout=30)
    assert _samples(served)["reverse_etl_serve_refused_requests_total", (("endpoint", "sync_runs"),)] == 1


def test_lookup_of_an_acknowledged_key_and_a_rejected_one(served: Served) -> None:
    served.emulator.set_faults(reject=["u3"])
    served.trigger("customers", wait="true")
    served.project.sql("UPDATE raw_customers SET first_name = 'Changed' WHERE customer_id IN ('u1', 'u2')")
    assert served.trigger("customers", wait="true").json()["outcome"] == "partial"  # u3 refused again
    runs = served.service.history("customers")
    ok = reverse_etl.lookup(served.project.root, "customers", "u1", environ=served.project.env)
    assert ok.in_snapshot and ok.rejected is None and ok.answer == "acknowledged"
    assert ok.snapshot["attributes.name"] == "Changed"
    assert ok.snapshot_run is not None and ok.snapshot_run.run_id == runs[-1].run_id
    bad = reverse_etl.lookup(served.project.root, "customers", "u3", environ=served.project.env)
    assert not bad.in_snapshot and bad.rejected is not None
    assert bad.rejected["kind"] == "insider" and bad.answer.startswith("Insider rejected it: ")
    assert bad.rejected["attempts"] == 2 and not bad.held  # retried by the second run, refused again
    assert bad.last_sent_run is not None and bad.last_sent_run.run_id == runs[-1].run_id
    unknown = reverse_etl.lookup(served.project.root, "customers", "u999", environ=served.project.env)
    assert not unknown.found and unknown.answer.startswith("not known")
    answer = httpx.get(f"{served.url}/api/syncs/customers/lookup", params={"key": "u1"}, timeout=30).json()
    assert answer["found"] and answer["snapshot"]["attributes.name"] == "Changed"


def test_retries_rate_limit_waits_and_request_latency(served: Served) -> None:
    served.emulator.set_faults(script=[429, 500, "ok"], retry_after=1)
    done = served.trigger("customers", wait="true").json()
    assert done["outcome"] == "success"
    record = served.service.history("customers")[-1]
    assert record.details["retries"] == 2
    assert record.details["rate_limit_wait_seconds"] >= 1.0  # Insider's Retry-After: 1
    samples = _samples(served)
    assert samples["reverse_etl_retries_total", (("sync", "customers"),)] == 2
    assert samples["reverse_etl_rate_limit_wait_seconds_total", (("sync", "customers"),)] == \
        record.details["rate_limit_wait_seconds"]
    # Three HTTP attempts, each timed; the requests counter counts them all.
    assert samples["reverse_etl_request_seconds_count", (("sync", "customers"),)] == 3
    assert samples["reverse_etl_requests_total", (("sync", "customers"),)] == record.details["requests"] == 3
