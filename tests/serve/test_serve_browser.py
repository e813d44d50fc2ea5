"""A real headless Chromium (Debian's, driven by Playwright) reads the pages a user reads.

overview -> a run -> rejected rows (filtered) -> row lookup, asserting the text on
each page. Screenshots of each page are kept in the test's tmp dir; with
``REVERSE_ETL_DOCS_SCREENSHOTS=DIR`` they are also written there (the README's
images under docs/ are made that way).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_factory import Served

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 800})
        finally:
            browser.close()


def _shot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / "screenshots" / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    if os.environ.get("REVERSE_ETL_DOCS_SCREENSHOTS"):
        target = Path(os.environ["REVERSE_ETL_DOCS_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / f"serve-{name}.png")


def _cells(page: Any, selector: str) -> dict[str, str]:
    """A two-column table as {first cell: second cell}."""
    rows = page.locator(f"{selector} tbody tr")
    return {rows.nth(i).locator("td").nth(0).inner_text(): rows.nth(i).locator("td").nth(1).inner_text()
            for i in range(rows.count())}


def test_overview_run_rejected_rows_and_lookup_in_a_browser(served_scheduled: Served, page: Any,
                                                            tmp_path: Path) -> None:
    served = served_scheduled
    served.emulator.set_faults(reject=["u3", "u5"])
    partial = served.trigger("customers", wait="true").json()
    assert partial["outcome"] == "partial"
    served.emulator.set_faults({})
    assert served.trigger("cities", wait="true").json()["outcome"] == "success"

    # Overview: each sync's last outcome, schedule, rows sent, rejected.
    page.goto(served.url + "/")
    customers = page.locator('tr[data-sync="customers"]')
    cities = page.locator('tr[data-sync="cities"]')
    assert page.locator("h1").inner_text() == "Syncs"
    assert customers.locator(".outcome").first.inner_text() == "partial"
    assert cities.locator(".outcome").first.inner_text() == "success"
    assert "0 * * * * (UTC)" in customers.inner_text()
    assert "30 6 * * * (Europe/Istanbul)" in cities.inner_text()
    cells = customers.locator("td")
    assert cells.nth(6).inner_text() == "12"   # rows sent
    assert cells.nth(7).inner_text() == "10"   # acknowledged
    assert cells.nth(8).inner_text() == "2"    # rejected
    assert cities.locator("td").nth(4).inner_text() != "—"  # last success shown
    next_customers = served.service.scheduler.next_run("customers")
    assert next_customers is not None
    assert cells.nth(5).inner_text() == f"{next_customers:%Y-%m-%dT%H:00:00Z}"  # next run, on the hour
    _shot(page, tmp_path, "overview")

    # The run: counts, stage timings, requests, its error line.
    customers.locator(f'a[href="/runs/{partial["run_id"]}"]').click()
    assert page.locator("h1").inner_text() == f"Run {partial['run_id']}"
    counts = _cells(page, "#counts")
    assert counts["added"] == "12" and counts["acked"] == "10" and counts["rejected"] == "2"
    assert set(_cells(page, "#stages")) >= {"source", "diff", "deliver", "commit", "total"}
    assert int(page.locator("#requests").inner_text()) >= 1
    assert "rejected" in page.locator("#error").inner_text()
    _shot(page, tmp_path, "run")

    # Rejected rows with Insider's reasons, then filtered down to one key.
    page.locator("#rejected-link").click()
    assert page.locator("#summary").inner_text().startswith("2 rejected row(s)")
    keys = page.locator("#rejected tbody tr")
    assert sorted(keys.nth(i).get_attribute("data-key") for i in range(keys.count())) == ["u3", "u5"]
    reason = page.locator('#rejected tr[data-key="u3"] td').nth(4).inner_text()
    assert reason and page.locator('#rejected tr[data-key="u3"] td').nth(2).inner_text() == "insider"
    page.fill('input[name="q"]', "u5")
    page.click('button[type="submit"]')
    assert page.locator("#rejected tbody tr").count() == 1
    assert "1 match the filter" in page.locator("#summary").inner_text()
    page.goto(served.url + "/syncs/customers/rejected")
    _shot(page, tmp_path, "rejected")

    # Row lookup: from a rejected row, then for an acknowledged key typed in the form.
    page.locator('#rejected tr[data-key="u3"] a', has_text="Look up").click()
    answer = page.locator("#answer").inner_text()
    assert answer == f"Insider rejected it: {reason}"
    assert partial["run_id"] in page.locator("#last-sent").inner_text()
    page.fill('input[name="key"]', "u7")
    page.click('button[type="submit"]')
    assert page.locator("#answer").inner_text() == "acknowledged"
    snapshot = _cells(page, "#snapshot")
    assert snapshot["attributes.name"] == "Name7" and snapshot["attributes.city"] == "City0"
    assert snapshot["attributes.custom.tags"] == '["t1"]'  # as Insider received it
    _shot(page, tmp_path, "lookup")
