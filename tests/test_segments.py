"""First-party segments: upload, file server, callback counts in the ledger, re-uploads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from project_factory import ProjectUnderTest, make_project
from test_sync_engine import run

import reverse_etl
from reverse_etl.errors import ConfigError
from reverse_etl.insider.emulator import Emulator

FPS = "/fps/v1/upload"


def segment_project(tmp_path: Path, emu: Emulator, **segment: Any) -> ProjectUnderTest:
    """Customers u1..u3 loaded into the emulator; the segment sync lists emails of vip_source."""
    project = make_project(tmp_path / "p", emu.url, rows=3)
    assert run(project).outcome == "success"  # FPS groups existing users only
    # The member list below holds one invalid email: segment runs end partial (listed by `rejected`).
    project.sql("CREATE TABLE vip_source AS SELECT * FROM (VALUES ('user1@example.com'), "
                "('user2@example.com'), ('not-an-email'), ('user2@example.com')) t(email)")
    project.write_model("vips", "select email from vip_source")
    with project.config() as config:
        config["syncs"] = [{"name": "vip", "model": "vips", "mode": "first_party_segment",
                            "segment": {"name": "vip_customers", "attribute": "em", "wait_seconds": 10, **segment}}]
    return project


def uploads(emu: Emulator) -> list[dict[str, Any]]:
    return [e["body"] for e in emu.requests() if e["path"] == FPS]


def test_segment_round_trip_counts_in_ledger(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = segment_project(tmp_path, insider_emulator)
    result = run(project)
    # 'not-an-email' is refused locally: the upload goes, the run is partial and lists it.
    assert result.outcome == "partial", result.message
    total, rows = reverse_etl.rejected_rows(project.root, "vip", environ=project.env)
    assert total == 1 and rows[0]["key"] == "not-an-email" and "email" in rows[0]["reason"]
    [body] = uploads(insider_emulator)
    assert body["segmentName"] == "vip_customers" and body["attributeName"] == "em"
    assert ".csv" in body["fileUrl"] and body["fileUrl"].startswith("http://127.0.0.1:")
    assert result.counts["valid_values_count"] == 2 and result.counts["invalid_values_count"] == 0
    assert result.counts["invalid"] == 1  # 'not-an-email' is refused before upload
    [segment] = insider_emulator.segments()
    assert segment["valid_values_count"] == 2 and segment["status"] == "processed"
    assert len(segment["members"]) == 2
    [record] = reverse_etl.history(project.root, "vip", environ=project.env)
    assert record.counts["valid_values_count"] == 2 and record.counts["total_entered_values"] == 2
    assert record.counts["segment_uploads"] == 1

    # Unchanged members: nothing is uploaded again.
    assert run(project).counts.get("segment_uploads", 0) == 0
    assert len(uploads(insider_emulator)) == 1

    # Changed members: Insider names are unique, so the re-upload is versioned.
    project.sql("INSERT INTO vip_source VALUES ('user3@example.com')")
    result = run(project)
    assert result.outcome == "partial", result.message
    assert [b["segmentName"] for b in uploads(insider_emulator)] == ["vip_customers", "vip_customers_v2"]
    assert result.counts["valid_values_count"] == 3


def test_invalid_values_counted_by_insider(tmp_path: Path, insider_emulator: Emulator) -> None:
    # uuid values are only checked for emptiness here; the emulator's count is what's recorded.
    project = segment_project(tmp_path, insider_emulator, attribute="uuid", column="email")
    result = run(project)
    assert result.counts["valid_values_count"] == 3 and result.counts["invalid_values_count"] == 0


@pytest.mark.parametrize(("attribute", "values", "users"), [
    ("ltv", "(21.0), (31.5), (99.0)", ("u2", "u3")),  # a custom number attribute (lifetime_value)
    ("city", "('City1'), ('City3'), ('Nowhere')", ("u1", "u3")),  # a default attribute
])
def test_segment_by_any_attribute(tmp_path: Path, insider_emulator: Emulator, attribute: str,
                                  values: str, users: tuple[str, ...]) -> None:
    # Insider: attributeName "can be either an identifier or any attribute".
    project = make_project(tmp_path / "p", insider_emulator.url, rows=3)
    assert run(project).outcome == "success"
    project.sql(f"CREATE TABLE seg_source AS SELECT * FROM (VALUES {values}) t(v)")
    project.write_model("seg", "select v from seg_source")
    with project.config() as config:
        config["syncs"] = [{"name": "seg", "model": "seg", "mode": "first_party_segment",
                            "segment": {"name": f"by_{attribute}", "attribute": attribute, "column": "v",
                                        "wait_seconds": 10}}]
    result = run(project)
    assert result.outcome == "success", result.message
    [body] = uploads(insider_emulator)
    assert body["attributeName"] == attribute
    assert result.counts["valid_values_count"] == 3 and result.counts["invalid_values_count"] == 0
    [segment] = insider_emulator.segments()
    expected = {insider_emulator.profile(uuid=u)["insider_id"] for u in users}  # type: ignore[index]
    assert set(segment["members"]) == expected


def test_oversize_member_file_is_split(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = segment_project(tmp_path, insider_emulator, max_file_bytes=100)
    project.sql("INSERT INTO vip_source SELECT 'member' || i || '@example.com' FROM range(20) t(i)")
    result = run(project)
    assert result.outcome == "partial", result.message
    names = [b["segmentName"] for b in uploads(insider_emulator)]
    assert len(names) > 1 and names[0] == "vip_customers_1"
    assert result.counts["total_entered_values"] == 22


def test_segment_name_in_use_is_a_clear_failure(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = segment_project(tmp_path, insider_emulator)
    run(project)
    reverse_etl.reset(project.root, "vip", environ=project.env)  # forgets the version counter
    result = run(project)
    assert result.outcome == "failed"
    assert result.message and "already in use" in result.message and "segment.name" in result.message


def test_missing_callback_is_recorded_pending(tmp_path: Path) -> None:
    with Emulator(fps_callback_delay=5) as emu:
        project = segment_project(tmp_path, emu, wait_seconds=0.2)
        result = run(project)
        assert result.outcome == "partial" and "pending" in (result.message or "")
        assert "valid_values_count" not in result.counts
        again = run(project)  # the same members: not uploaded again; the pending one is now unknown
        assert len(uploads(emu)) == 1 and again.counts.get("segment_uploads", 0) == 0


@pytest.mark.parametrize(("segment", "message"), [
    ({"name": "x" * 41}, "at most 40"),
    ({"name": "ok", "storage": "s3"}, "s3_bucket"),
    ({"name": "ok", "attribute": "Store ID"}, "segment attribute 'Store ID' must be em, pn, uuid or an attribute"),
])
def test_segment_config_errors(tmp_path: Path, segment: dict[str, Any], message: str) -> None:
    project = make_project(tmp_path / "p")
    with project.config() as config:
        config["syncs"] = [{"name": "s", "model": "customers", "mode": "first_party_segment", "segment": segment}]
    with pytest.raises(ConfigError, match=message):
        reverse_etl.validate(project.root, environ=project.env)
