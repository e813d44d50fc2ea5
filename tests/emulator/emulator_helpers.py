"""Constants and helpers shared by the emulator tests."""

from __future__ import annotations

from typing import Any

import httpx

HEADERS = {"X-PARTNER-NAME": "acme", "X-REQUEST-TOKEN": "test-key"}
UPSERT = "/api/user/v1/upsert"
ATTR_DELETE = "/api/user/v1/attribute/delete"
IDENTITY = "/api/user/v1/identity"
USER_DELETE = "/api/user/v1/delete"
ANONYMIZE = "/api/user/v1/anonymize"
FPS = "/fps/v1/upload"
EXPORT = "/api/raw/v1/export"


def upsert(client: httpx.Client, *users: dict[str, Any], **top: Any) -> httpx.Response:
    """POST users to the upsert endpoint."""
    return client.post(UPSERT, json={"users": list(users), **top})


def ok(n: int) -> dict[str, Any]:
    """The documented all-good upsert body."""
    return {"data": {"successful": {"count": n}, "fail": {}}}
