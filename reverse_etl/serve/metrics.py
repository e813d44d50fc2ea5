"""``/metrics``: Prometheus text, read from the run ledger plus what this process saw.

Run and row totals come from the ledger (through :func:`reverse_etl.api.history`),
so they count every run of the project, CLI runs included, survive restarts and
always equal what ``reverse-etl history`` shows. Stage timings and durations of
runs made by this process are histograms fed by a run hook; schedule and trigger
counters are the server's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from reverse_etl.run.events import RunEvent, RunFinished, StageFinished
from reverse_etl.state import RunRecord

ROW_KINDS = ("added", "changed", "removed", "unchanged", "to_send", "acked", "rejected", "failed",
             "invalid", "held_back", "recovered")
"""Ledger counts exported as ``reverse_etl_rows_total{kind=...}`` (``to_send``: operations sent)."""

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class LedgerCollector(Collector):
    """Totals over the ledger, computed at each scrape."""

    def __init__(self, records: Callable[[], Sequence[RunRecord]], syncs: Callable[[], Iterable[str]],
                 missed: Callable[[str], int], clock: Callable[[], float] = time.time) -> None:
        self._records = records
        self._syncs = syncs
        self._missed = missed
        self._clock = clock

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """Yield the metric families (called by the registry on each scrape)."""
        records = list(self._records())
        names = list(self._syncs())
        runs = CounterMetricFamily("reverse_etl_runs", "Finished sync runs in the ledger, by outcome.",
                                   labels=["sync", "outcome"])
        rows = CounterMetricFamily("reverse_etl_rows", "Rows handled by recorded runs, by kind.",
                                   labels=["sync", "kind"])
        requests = CounterMetricFamily("reverse_etl_requests", "HTTP requests sent to Insider by recorded runs.",
                                       labels=["sync"])
        retries = CounterMetricFamily("reverse_etl_retries", "Requests retried by recorded runs (429, 5xx, timeouts).",
                                      labels=["sync"])
        waits = CounterMetricFamily("reverse_etl_rate_limit_wait_seconds",
                                    "Seconds recorded runs waited on rate limits (client limiter, Retry-After).",
                                    labels=["sync"])
        last_ok = GaugeMetricFamily("reverse_etl_last_success_timestamp_seconds",
                                    "When the last successful run of a sync finished (Unix time).", labels=["sync"])
        since_ok = GaugeMetricFamily("reverse_etl_seconds_since_last_success",
                                     "Seconds since the last successful run of a sync finished "
                                     "(absent: never succeeded).", labels=["sync"])
        missed = CounterMetricFamily("reverse_etl_schedule_missed_runs",
                                     "Scheduled runs missed since this server started (downtime, busy).",
                                     labels=["sync"])
        by_outcome: dict[tuple[str, str], int] = {}
        by_kind: dict[tuple[str, str], int] = {}
        per_sync: dict[str, list[float]] = {}
        last_success: dict[str, float] = {}
        for record in records:
            by_outcome[record.sync, record.outcome] = by_outcome.get((record.sync, record.outcome), 0) + 1
            for kind in ROW_KINDS:
                by_kind[record.sync, kind] = by_kind.get((record.sync, kind), 0) + int(record.counts.get(kind, 0))
            sums = per_sync.setdefault(record.sync, [0.0, 0.0, 0.0])
            details = record.details or {}
            sums[0] += float(details.get("requests", 0) or 0)
            sums[1] += float(details.get("retries", 0) or 0)
            sums[2] += float(details.get("rate_limit_wait_seconds", 0) or 0)
            if record.outcome == "success" and record.finished_at:
                finished = _unix(record.finished_at)
                last_success[record.sync] = max(last_success.get(record.sync, 0.0), finished)
        for (sync, outcome), n in sorted(by_outcome.items()):
            runs.add_metric([sync, outcome], n)
        for (sync, kind), n in sorted(by_kind.items()):
            rows.add_metric([sync, kind], n)
        now = self._clock()
        for sync in names:
            total = per_sync.get(sync, [0.0, 0.0, 0.0])
            requests.add_metric([sync], total[0])
            retries.add_metric([sync], total[1])
            waits.add_metric([sync], total[2])
            missed.add_metric([sync], self._missed(sync))
            if sync in last_success:
                last_ok.add_metric([sync], last_success[sync])
                since_ok.add_metric([sync], max(0.0, now - last_success[sync]))
        yield from (runs, rows, requests, retries, waits, last_ok, since_ok, missed)


def _unix(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


class ServerMetrics:
    """The registry behind ``/metrics``, and the run hook that feeds its histograms."""

    def __init__(self, ledger: LedgerCollector) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(ledger)
        self.stage_seconds = Histogram("reverse_etl_stage_seconds", "Stage durations of runs made by this server.",
                                       ["sync", "stage"], buckets=STAGE_BUCKETS, registry=self.registry)
        self.run_seconds = Histogram("reverse_etl_run_seconds", "Durations of runs made by this server.",
                                     ["sync"], buckets=STAGE_BUCKETS, registry=self.registry)
        self.request_seconds = Histogram(
            "reverse_etl_request_seconds", "Latency of each HTTP request to Insider in runs made by this server.",
            ["sync"], buckets=REQUEST_BUCKETS, registry=self.registry)
        self.triggers = Counter("reverse_etl_serve_triggers", "Run triggers this server accepted, by source.",
                                ["trigger"], registry=self.registry)
        self.coalesced = Counter("reverse_etl_serve_coalesced_triggers",
                                 "Triggers that joined a run already waiting for the same sync.",
                                 registry=self.registry)
        self.refused = Counter("reverse_etl_serve_refused_requests",
                               "Trigger requests refused (no or wrong token or signature).", ["endpoint"],
                               registry=self.registry)
        self.queue_depth = Gauge("reverse_etl_serve_queue_depth", "Runs waiting to start.", registry=self.registry)

    def hook(self, event: RunEvent) -> None:
        """Run hook: stage and run durations, and each request's latency."""
        if isinstance(event, StageFinished):
            self.stage_seconds.labels(event.sync, event.stage).observe(event.seconds)
        elif isinstance(event, RunFinished):
            result = event.result
            self.run_seconds.labels(result.sync).observe(result.seconds.get("total", 0.0))
            latency = self.request_seconds.labels(result.sync)
            for seconds in result.request_seconds:
                latency.observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
