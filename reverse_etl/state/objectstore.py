"""A thin, typed face of an object store (S3, GCS, Azure) for the state of a project.

Built on `obstore <https://developmentseed.org/obstore/>`_ (the optional ``state``
extra), imported lazily. obstore gives the two conditional writes the state
needs: *create only if absent* (``If-None-Match: *``) for journal entries and the
lease, and *replace only this version* (``If-Match: <etag>``) for ``meta.json``
and lease renewals.

Credentials come only from the environment and the provider chain (``AWS_*``,
``GOOGLE_*``, ``AZURE_*``, instance roles); ``AWS_ENDPOINT_URL`` and
``AWS_ALLOW_HTTP`` point it at a local emulator. Every failure becomes one line
naming the URL, never a secret.
"""

from __future__ import annotations

import builtins
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from reverse_etl.errors import ConfigError, StateError
from reverse_etl.project.state_url import check_state_url


class Conflict(StateError):
    """A conditional write lost: the object exists already, or changed since it was read."""


@dataclass
class Traffic:
    """What this process moved to and from object stores (benchmarks and ``--json`` readers)."""

    requests: int = 0
    bytes_read: int = 0
    bytes_written: int = 0


TRAFFIC = Traffic()
"""Counters for every :class:`ObjectStore` of this process (reset by assigning fields to 0)."""


@dataclass(frozen=True)
class Blob:
    """An object's bytes and the version they were read at."""

    data: bytes
    etag: str | None
    last_modified: datetime | None


class ObjectStore:
    """Objects under one URL prefix; paths are relative to it (``customers/meta.json``)."""

    def __init__(self, url: str, store: Any | None = None) -> None:
        self.url = check_state_url(url).rstrip("/")
        self._store = store

    # ------------------------------------------------------------ plumbing
    @property
    def store(self) -> Any:
        """The obstore store (built on first use, from the environment)."""
        if self._store is None:
            try:
                from obstore.store import from_url
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise ConfigError(f"state path {self.url}: object-store state needs the `state` extra "
                                  "(pip install 'reverse_etl[state]')") from exc
            try:
                self._store = from_url(self.url, retry_config={
                    "max_retries": 3, "retry_timeout": timedelta(seconds=20)})
            except Exception as exc:
                raise StateError(f"state store {self.url} cannot be used: {_reason(exc)}") from exc
        return self._store

    def _fail(self, action: str, path: str, exc: BaseException) -> StateError:
        return StateError(f"state store {self.url} cannot be reached ({action} {path}: {_reason(exc)}); "
                          "check the URL, the network and the credentials in the environment")

    # ---------------------------------------------------------- operations
    def get(self, path: str) -> Blob | None:
        """An object, or None when there is none."""
        import obstore

        try:
            TRAFFIC.requests += 1
            result = obstore.get(self.store, path)
            data = bytes(result.bytes())
            TRAFFIC.bytes_read += len(data)
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._fail("reading", path, exc) from exc
        meta = result.meta
        return Blob(data, meta.get("e_tag"), meta.get("last_modified"))

    def put(self, path: str, data: bytes | Path, *, create: bool = False,
            if_etag: str | None = None) -> str | None:
        """Write an object; returns its new e-tag.

        ``create``: only if no object is there (else :class:`Conflict`). ``if_etag``:
        only if the object is still at that version (else :class:`Conflict`).
        """
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        mode: Any = "create" if create else ({"e_tag": if_etag} if if_etag else "overwrite")
        TRAFFIC.requests += 1
        TRAFFIC.bytes_written += data.stat().st_size if isinstance(data, Path) else len(data)
        try:
            result = obstore.put(self.store, path, data, mode=mode)
        except (AlreadyExistsError, PreconditionError) as exc:
            raise Conflict(f"{self.url}/{path} changed meanwhile") from exc
        except Exception as exc:
            raise self._fail("writing", path, exc) from exc
        return result.get("e_tag")

    def download(self, path: str, target: Path) -> None:
        """Stream an object into a local file (a temporary name, fsynced, then renamed)."""
        import obstore

        tmp = target.with_name(target.name + ".part")
        try:
            TRAFFIC.requests += 1
            result = obstore.get(self.store, path)
            with open(tmp, "wb") as handle:
                for chunk in result.stream(min_chunk_size=8 * 1024 * 1024):
                    handle.write(chunk)
                    TRAFFIC.bytes_read += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
        except FileNotFoundError as exc:
            tmp.unlink(missing_ok=True)
            raise StateError(f"state file {self.url}/{path} is missing") from exc
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            raise self._fail("reading", path, exc) from exc
        tmp.replace(target)

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Paths of the objects under ``prefix`` (relative to the store's URL), sorted."""
        import obstore

        TRAFFIC.requests += 1
        try:
            out = [str(meta["path"]) for batch in obstore.list(self.store, prefix=prefix or None)
                   for meta in batch]
        except Exception as exc:
            raise self._fail("listing", prefix or "/", exc) from exc
        return sorted(out)

    def delete(self, paths: builtins.list[str]) -> None:
        """Remove objects (absent ones are fine)."""
        import obstore

        if not paths:
            return
        TRAFFIC.requests += 1
        try:
            obstore.delete(self.store, paths)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._fail("deleting", paths[0], exc) from exc


def _reason(exc: BaseException) -> str:
    """A short, secret-free reason: the error's kind and, for HTTP, its status."""
    text = str(exc)
    for marker in ("error sending request", "Connection refused", "dns error", "timed out", "builder error", "403", "404",
                   "401", "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
        if marker.lower() in text.lower():
            return f"{type(exc).__name__}: {marker}"
    return type(exc).__name__


_STORES: dict[str, ObjectStore] = {}


def store_for(url: str) -> ObjectStore:
    """One :class:`ObjectStore` per URL in this process (its HTTP client is reused)."""
    key = url.rstrip("/")
    if key not in _STORES:
        _STORES[key] = ObjectStore(key)
    return _STORES[key]
