"""Tenant settings from a file, the profile read's quota, PII deletion by profile id."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from emulator_helpers import HEADERS, upsert

from reverse_etl.insider.emulator import Emulator
from reverse_etl.insider.emulator.tenant import load_tenant_config

PROFILE = "/api/user/v1/profile"


def test_yaml_tenant_config_configures_the_emulator(tmp_path: Path) -> None:
    path = tmp_path / "tenant.yml"
    path.write_text("partner: shop\napi_key: k1\ncustom_identifiers: [member_no]\n"
                    "pii_attributes: [tier]\nforbidden_api_keys: [read-only]\n"
                    "event_ttl_days: 7\nrate_limits: {upsert: [5, 60]}\n")
    with Emulator.from_tenant_config(path) as emu, httpx.Client(
            base_url=emu.url, headers={"X-PARTNER-NAME": "shop", "X-REQUEST-TOKEN": "k1"}) as c:
        r = upsert(c, {"identifiers": {"custom": {"member_no": "M1"}},
                       "attributes": {"custom": {"tier": "gold"}}})
        assert r.json()["data"]["successful"] == {"count": 1}
        denied = c.post("/api/user/v1/upsert", json={"users": []},
                        headers={"X-REQUEST-TOKEN": "read-only"})
        assert denied.status_code == 403
        assert emu.state.store.event_ttl_seconds == 7 * 86400
        assert emu.state.limiter.limits["upsert"] == (5, 60.0)


def test_json_tenant_config_names_an_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "tenant.json"
    path.write_text('{"custom_identifier": ["x"]}')
    with pytest.raises(ValueError, match=r"unknown tenant setting.*custom_identifier"):
        load_tenant_config(path)


def test_profile_read_and_its_quota() -> None:
    with Emulator(profile_quota=5) as emu, httpx.Client(base_url=emu.url,
                                                        headers=HEADERS) as c:
        upsert(c, {"identifiers": {"email": "a@b.co"}, "attributes": {"name": "Ada"}})
        body = {"identifiers": {"email": "a@b.co"}, "attributes": ["name", "iid"],
                "quota": True}
        r = c.post(PROFILE, json=body)
        assert r.status_code == 200
        iid = r.json()["attributes"]["iid"]
        assert r.json() == {"attributes": {"name": "Ada", "iid": iid}, "events": {},
                            "quota": {"cost": 1.0, "used": 1.0, "total": 5.0}}
        for _ in range(4):
            assert c.post(PROFILE, json=body).status_code == 200
        assert c.post(PROFILE, json=body).status_code == 429
        emu.advance_clock(61)
        assert c.post(PROFILE, json={"identifiers": {"email": "x@y.co"},
                                     "attributes": ["name"]}).status_code == 404


def test_pii_deletion_by_profile_id() -> None:
    with Emulator() as emu, httpx.Client(base_url=emu.url, headers=HEADERS) as c:
        upsert(c, {"identifiers": {"email": "a@b.co", "uuid": "u1"},
                   "attributes": {"name": "Ada", "custom": {"tier": "gold"}}})
        profile = emu.profile(uuid="u1")
        assert profile is not None
        r = c.post("/api/contact/v1/anonymize", json={"insider_id": profile["insider_id"]})
        assert (r.status_code, r.json()) == (200, {})
        after = emu.profile(uuid="u1")
        assert after is not None and "name" not in after["attributes"]
        assert "email" not in after["identifiers"]
        wrong = c.post("/api/contact/v1/anonymize", json={"insider_id": "nope"})
        assert wrong.status_code == 404
