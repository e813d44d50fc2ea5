"""Which ``state:`` paths name an object store, and refusing ones that carry credentials."""

from __future__ import annotations

from urllib.parse import urlsplit

from reverse_etl.errors import ConfigError

REMOTE_SCHEMES = ("s3", "gs", "az", "abfs", "abfss")
"""URL schemes of object stores a ``state:`` path may name."""

_CREDENTIAL_WORDS = ("key", "secret", "token", "password", "signature", "sig", "credential")


def is_remote(path: str) -> bool:
    """True when a ``state:`` path names an object store (``s3://``, ``gs://``, ``az://``)."""
    return urlsplit(path).scheme.lower() in REMOTE_SCHEMES


def check_state_url(url: str) -> str:
    """Refuse an object-store URL that carries credentials; return it unchanged otherwise."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in REMOTE_SCHEMES:
        raise ConfigError(f"state path {url!r}: use a local path or one of "
                          + ", ".join(f"{s}://" for s in REMOTE_SCHEMES))
    if not parts.netloc:
        raise ConfigError(f"state path {url!r} names no bucket (e.g. s3://my-bucket/reverse-etl)")
    query = parts.query.lower()
    if "@" in parts.netloc or any(word in query for word in _CREDENTIAL_WORDS):
        raise ConfigError(f"state path {parts.scheme}://{parts.hostname or '?'}/...: credentials never go in "
                          "syncs.yml; set them in the environment (AWS_ACCESS_KEY_ID, ...) or use "
                          "the provider chain (instance role, workload identity)")
    return url
