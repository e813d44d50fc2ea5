"""The server over real HTTP: triggers with and without the token, webhooks, run status, healthz."""

from __future__ import annotations

import hashlib
import hmac

import httpx
import orjson
from serve_factory import DBT_SECRET, GITHUB_SECRET, Served


def _ledger(served: Served) -> list[str]:
    return [f"{r.sync}:{r.outcome}" for r in served.service.history()]


def test_trigger_without_the_token_is_refused_and_runs_nothing(served: Served) -> None:
    for token in (None, "wrong-token"):
        with served.client(token) as c:
            answer = c.post("/api/syncs/customers/runs")
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        assert "bearer token" in answer.json()["error"]
        assert "serve-test-token" not in answer.text
    assert _ledger(served) == []
    assert served.emulator.profiles() == []


def test_trigger_with_the_token_runs_the_sync(served: Served) -> None:
    answer = served.trigger("customers")
    assert answer.status_code == 202
    body = answer.json()
    assert body["sync"] == "customers" and body["status"] in ("queued", "running", "finished")
    with served.client(None) as c:  # reading needs no token
        status = c.get(f"/api/runs/{body['id']}")
        while status.json()["status"] != "finished":
            served.service.queue.get(body["id"]).done.wait(30)  # type: ignore[union-attr]
            status = c.get(f"/api/runs/{body['id']}")
    done = status.json()
    assert done["outcome"] == "success" and done["counts"]["acked"] == 12
    assert _ledger(served) == ["customers:success"]
    assert served.emulator.profile(uuid="u7")["attributes"]["name"] == "Name7"  # type: ignore[index]
    # The ledger run id answers too, after the fact.
    with served.client(None) as c:
        assert c.get(f"/api/runs/{done['run_id']}").json()["outcome"] == "success"


def test_wait_true_answers_200_with_the_outcome(served: Served) -> None:
    answer = served.trigger("cities", wait="true")
    assert answer.status_code == 200
    assert answer.json()["outcome"] == "success" and answer.json()["counts"]["acked"] == 12
    served.project.sql("UPDATE raw_customers SET city = 'Izmir' WHERE customer_id = 'u3'")
    again = served.trigger("cities", wait="true").json()
    assert again["counts"]["to_send"] == 1 and again["counts"]["acked"] == 1
    assert served.emulator.profile(uuid="u3")["attributes"]["custom"]["home_city"] == "Izmir"  # type: ignore[index]


def test_trigger_by_selector_runs_each_selected_sync(served: Served) -> None:
    with served.client() as c:
        answer = c.post("/api/runs", params={"select": "tag:daily", "wait": "true"})
        both = c.post("/api/runs", json={"select": ["customers", "cities"]}, params={"wait": "true"})
        unknown = c.post("/api/runs", params={"select": "tag:nope"})
        no_sync = c.post("/api/syncs/nope/runs")
    assert answer.status_code == 200 and [r["sync"] for r in answer.json()["runs"]] == ["cities"]
    assert [r["outcome"] for r in both.json()["runs"]] == ["success", "success"]
    assert unknown.status_code == 400 and "tag:nope" in unknown.json()["error"]
    assert no_sync.status_code == 404 and "known: customers, cities" in no_sync.json()["error"]
    assert sorted(_ledger(served)) == ["cities:success", "cities:success", "customers:success"]


def _dbt_body(status: str = "Success") -> bytes:
    return orjson.dumps({"accountId": 1, "eventType": "job.run.completed",
                         "data": {"jobId": "9", "runId": "4242", "runStatus": status}})


def test_dbt_cloud_webhook_needs_a_valid_signature(served: Served) -> None:
    body = _dbt_body()
    good = hmac.new(DBT_SECRET.encode(), body, hashlib.sha256).hexdigest()
    with httpx.Client(base_url=served.url, timeout=60) as c:
        forged = c.post("/api/webhooks/dbt-cloud", content=body, headers={"Authorization": "0" * 64})
        tampered = c.post("/api/webhooks/dbt-cloud", content=body.replace(b"4242", b"4243"),
                          headers={"Authorization": good})
        assert forged.status_code == tampered.status_code == 401
        assert _ledger(served) == []
        failed_job = _dbt_body("Error")
        ignored = c.post("/api/webhooks/dbt-cloud", content=failed_job, headers={
            "Authorization": hmac.new(DBT_SECRET.encode(), failed_job, hashlib.sha256).hexdigest()})
        assert ignored.status_code == 200 and ignored.json()["runs"] == []
        ran = c.post("/api/webhooks/dbt-cloud", content=body, params={"select": "cities", "wait": "true"},
                     headers={"Authorization": good})
    assert ran.status_code == 200, ran.text
    assert [r["outcome"] for r in ran.json()["runs"]] == ["success"]
    assert "DBT_CLOUD_API_TOKEN is not set" in ran.json()["note"]
    assert _ledger(served) == ["cities:success"]


def test_github_webhook_needs_a_valid_signature(served: Served) -> None:
    body = b'{"ref": "refs/heads/main"}'
    sig = "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    with httpx.Client(base_url=served.url, timeout=60) as c:
        bad = c.post("/api/webhooks/github", content=body, headers={"X-Hub-Signature-256": "sha256=" + "0" * 64})
        ping = c.post("/api/webhooks/github", content=body,
                      headers={"X-Hub-Signature-256": sig, "X-GitHub-Event": "ping"})
        push = c.post("/api/webhooks/github", content=body, params={"select": "customers", "wait": "true"},
                      headers={"X-Hub-Signature-256": sig, "X-GitHub-Event": "push"})
    assert bad.status_code == 401 and ping.json()["note"] == "pong"
    assert [r["outcome"] for r in push.json()["runs"]] == ["success"]
    assert _ledger(served) == ["customers:success"]


def test_healthz_and_read_only_pages_need_no_token(served: Served) -> None:
    with served.client(None) as c:
        health = c.get("/healthz")
        page = c.get("/")
        post_page = c.post("/")
    assert health.status_code == 200 and health.json() == {"status": "ok", "syncs": 2, "queued": 0}
    assert page.status_code == 200 and "customers" in page.text and "never ran" in page.text
    assert post_page.status_code == 405  # pages only read
