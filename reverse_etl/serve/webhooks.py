"""What a webhook asks for: which syncs to run, and (dbt Cloud) after which dbt run.

A dbt Cloud ``job.run.completed`` event names the account and the run; when an
API token is configured, the run's ``run_results.json`` artifact is fetched and
each selected sync runs only if that job rebuilt its model (the same gate as
``reverse-etl run --dbt-run-results``). Without a token, or when the artifact
cannot be fetched, the selected syncs run unconditionally and the answer says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger("reverse_etl.serve")


@dataclass(frozen=True)
class DbtCloudEvent:
    """The parts of a dbt Cloud webhook the server uses."""

    event_type: str
    account_id: str
    run_id: str
    job_id: str
    status: str

    @classmethod
    def parse(cls, body: Any) -> DbtCloudEvent:
        """Read a webhook body; ValueError with a one-line reason when it is not one."""
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise ValueError("not a dbt Cloud webhook: expected a JSON object with eventType and data")
        data = body["data"]
        return cls(event_type=str(body.get("eventType", "")), account_id=str(body.get("accountId", "")),
                   run_id=str(data.get("runId", "")), job_id=str(data.get("jobId", "")),
                   status=str(data.get("runStatus", "")))

    @property
    def succeeded(self) -> bool:
        """The dbt job completed successfully (only then are its models worth syncing)."""
        return self.event_type == "job.run.completed" and self.status.lower() == "success"


def fetch_run_results(base_url: str, token: str, event: DbtCloudEvent, into: Path,
                      timeout: float = 8.0) -> tuple[Path | None, str | None]:
    """Download the run's ``run_results.json`` into ``into``: (path, None) or (None, why not).

    The timeout stays under dbt Cloud's 10 s webhook timeout (it retries a webhook that
    timed out; a retry would coalesce with the run queued by the first anyway).
    """
    url = (f"{base_url.rstrip('/')}/api/v2/accounts/{event.account_id}/runs/{event.run_id}"
           "/artifacts/run_results.json")
    try:
        response = httpx.get(url, headers={"Authorization": f"Token {token}"}, timeout=timeout)
    except httpx.HTTPError as exc:
        return None, f"could not fetch run_results.json of dbt Cloud run {event.run_id}: {type(exc).__name__}"
    if response.status_code != 200:
        return None, (f"dbt Cloud answered {response.status_code} for run_results.json of run "
                      f"{event.run_id}")
    into.mkdir(parents=True, exist_ok=True)
    path = into / f"run_results-{event.account_id}-{event.run_id}.json"
    path.write_bytes(response.content)
    return path, None
