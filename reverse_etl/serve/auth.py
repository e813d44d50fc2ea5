"""Who may trigger runs: a bearer token, or a webhook signed with a shared secret.

Every comparison is constant-time (:func:`hmac.compare_digest`). Secrets come from
environment variables named on the command line, never from syncs.yml, and never
appear in an answer or a log line.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Secrets:
    """The server's secrets (None: that way in is closed)."""

    token: str | None = None
    dbt_cloud: str | None = None
    github: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str], token_env: str, dbt_env: str, github_env: str) -> Secrets:
        """Read the secrets from the named variables (empty counts as unset)."""
        return cls(token=environ.get(token_env) or None, dbt_cloud=environ.get(dbt_env) or None,
                   github=environ.get(github_env) or None)


def bearer_ok(header: str | None, token: str | None) -> bool:
    """``Authorization: Bearer <token>`` matches (False when no token is configured)."""
    if not token or not header:
        return False
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def hmac_hex(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``body`` (what dbt Cloud and GitHub sign)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def dbt_cloud_ok(header: str | None, secret: str | None, body: bytes) -> bool:
    """dbt Cloud puts the hex HMAC-SHA256 of the raw body in ``Authorization``."""
    if not secret or not header:
        return False
    return hmac.compare_digest(header.strip().lower().encode(), hmac_hex(secret, body).encode())


def github_ok(header: str | None, secret: str | None, body: bytes) -> bool:
    """GitHub sends ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(header.removeprefix("sha256=").strip().lower().encode(),
                               hmac_hex(secret, body).encode())
