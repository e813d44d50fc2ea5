"""Randomized trials: after any mix of edits, NULLs, removals, identifier changes, mapping
changes, resets, full refreshes, kill -9 crashes and requests whose answer is lost (applied,
then the connection dropped) or dropped before they are applied, Insider (the emulator) equals
the model field by field once a run has finished; appended arrays (``append_arrays: true``)
hold every element of the model exactly once. The figures are printed and go to README.md."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from project_factory import ProjectUnderTest, make_project
from test_snapshot_edge_cases import crash_after
from test_sync_engine import run

import reverse_etl
from reverse_etl.insider.emulator import Emulator

TRIALS = 24
SEED = 12


def model_rows(project: ProjectUnderTest, town_from: str) -> dict[str, dict[str, Any]]:
    rows = project.sql(f"SELECT customer_id, email, first_name, city, lifetime_value, {town_from}, tags "
                       "FROM raw_customers")
    return {r[0]: {"email": r[1], "name": r[2], "city": r[3], "ltv": r[4], "town": r[5], "tags": r[6]}
            for r in rows}


def tags_match(model: list[str] | None, held: Any) -> bool:
    """Appended arrays: Insider holds every element of the model exactly once (elements the
    model dropped stay appended, as ``append_arrays`` means); a NULL array is cleared."""
    if model is None:
        return held is None
    return isinstance(held, list) and len(held) == len(set(held)) and set(model) <= set(held)


def mismatches(emu: Emulator, model: dict[str, dict[str, Any]]) -> tuple[int, list[str]]:
    """(fields compared, differences) between the model and every emulator profile."""
    problems: list[str] = []
    compared = 0
    profiles = {p["identifiers"].get("uuid"): p for p in emu.profiles()}
    for key in sorted(set(profiles) - set(model)):
        problems.append(f"{key}: at Insider but not in the model")
    for key, row in model.items():
        profile = profiles.get(key)
        if profile is None:
            problems.append(f"{key}: missing at Insider")
            continue
        held = {"email": profile["identifiers"].get("email"), "name": profile["attributes"].get("name"),
                "city": profile["attributes"].get("city"),
                "ltv": profile["attributes"]["custom"].get("ltv"),
                "town": profile["attributes"]["custom"].get("town"),
                "tags": profile["attributes"]["custom"].get("tags")}
        for name, value in row.items():
            compared += 1
            if name == "tags" and tags_match(value, held[name]):
                continue
            if name == "tags" or held[name] != value:
                problems.append(f"{key}.{name}: model {value!r}, Insider {held[name]!r}")
    return compared, problems


def test_randomized_trials_end_with_insider_equal_to_the_model(tmp_path: Path, insider_emulator: Emulator) -> None:
    rng = random.Random(SEED)
    fault_rng = random.Random(SEED + 1)  # its own stream: the mix of actions stays the seed's
    project = make_project(tmp_path / "p", insider_emulator.url, rows=6, on_removed="delete_user",
                           attributes={"name": "first_name", "city": "city", "ltv": "lifetime_value",
                                       "town": "city", "tags": "tags"},
                           options={"append_arrays": True})
    with project.config() as config:
        config["destination"].update(concurrency=1, max_batch_users=2, max_retries=10, verify_delay_seconds=0.02)
    town_from, next_id, serial = "city", 7, 0
    started = time.perf_counter()
    stats = {"trials": 0, "runs": 0, "crashes": 0, "resets": 0, "full_refreshes": 0, "mapping_changes": 0,
             "identifier_changes": 0, "tag_appends": 0, "faulty_trials": 0, "lost_answers": 0,
             "fields_compared": 0, "mismatches": 0}
    failures: list[str] = []
    for trial in range(TRIALS):
        for _ in range(rng.randint(1, 4)):
            keys = [r[0] for r in project.sql("SELECT customer_id FROM raw_customers ORDER BY 1")]
            action = rng.choice(["edit", "null", "remove", "add", "email", "email", "mapping", "ltv", "tag", "tag"])
            key = rng.choice(keys) if keys else None
            serial += 1
            if action == "add" or key is None:
                project.sql(f"INSERT INTO raw_customers VALUES ('u{next_id}', 'user{next_id}.{serial}@example.com', "
                            f"'N{serial}', 'C{serial % 3}', {serial}.5, ['t'])")
                next_id += 1
            elif action == "edit":
                project.sql(f"UPDATE raw_customers SET city = 'C{serial % 4}', first_name = 'N{serial}' "
                            f"WHERE customer_id = '{key}'")
            elif action == "null":
                column = rng.choice(["city", "first_name", "lifetime_value"])
                project.sql(f"UPDATE raw_customers SET {column} = NULL WHERE customer_id = '{key}'")
            elif action == "remove" and len(keys) > 2:
                project.sql(f"DELETE FROM raw_customers WHERE customer_id = '{key}'")
            elif action == "email":
                stats["identifier_changes"] += 1
                project.sql(f"UPDATE raw_customers SET email = 'm{serial}@example.com' WHERE customer_id = '{key}'")
            elif action == "tag":
                stats["tag_appends"] += 1
                project.sql(f"UPDATE raw_customers SET tags = list_append(coalesce(tags, []), 'x{serial % 5}') "
                            f"WHERE customer_id = '{key}'")
            elif action == "ltv":
                project.sql(f"UPDATE raw_customers SET lifetime_value = {serial} WHERE customer_id = '{key}'")
            elif action == "mapping":  # the same attribute, another source column: a full resend
                stats["mapping_changes"] += 1
                town_from = "first_name" if town_from == "city" else "city"
                with project.config() as config:
                    config["syncs"][0]["attributes"]["town"] = town_from
        kwargs: dict[str, Any] = {}
        faulty = fault_rng.random() < 0.4  # answers lost after applying, or connections dropped before
        if faulty:
            stats["faulty_trials"] += 1
            insider_emulator.set_faults(lost_answer=0.25, drop=0.05, seed=trial, endpoints=["upsert"])
        roll = rng.random()
        if roll < 0.12:
            stats["resets"] += 1
            reverse_etl.reset(project.root, "customers", environ=project.env)
        elif roll < 0.22:
            stats["full_refreshes"] += 1
            kwargs["full_refresh"] = True
        elif roll < 0.34:
            stats["crashes"] += 1  # kill -9 after the first acknowledged request
            crash_after(project, 1, full_refresh=False)
        result = run(project, **kwargs)
        stats["runs"] += 1
        if result.outcome != "success":
            result = run(project)  # e.g. a crash left work: the next run finishes it
            stats["runs"] += 1
        assert result.outcome == "success", result.message
        insider_emulator.set_faults({})
        compared, problems = mismatches(insider_emulator, model_rows(project, town_from))
        stats["trials"] += 1
        stats["fields_compared"] += compared
        stats["mismatches"] += len(problems)
        failures.extend(f"trial {trial}: {p}" for p in problems)
        again = reverse_etl.plan(project.root, environ=project.env).syncs[0]
        if again.counts["to_send"]:
            failures.append(f"trial {trial}: the next plan would send {again.counts['to_send']}")
    log = insider_emulator.requests()
    stats["lost_answers"] = sum(e["fault"] == "lost_answer" for e in log)
    stats["dropped"] = sum(e["fault"] == "drop" for e in log)
    stats["profile_reads"] = sum(e["path"] == "/api/user/v1/profile" for e in log)
    stats["seconds"] = round(time.perf_counter() - started, 1)
    print("randomized integrity:", json.dumps(stats))
    (tmp_path / "randomized.json").write_text(json.dumps(stats))
    assert not failures, "\n".join(failures[:20])
    assert stats["lost_answers"] and stats["profile_reads"], "the lost-answer fault never fired"
