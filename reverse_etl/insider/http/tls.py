"""The TLS context the delivery lanes share, built once per process and only where TLS is spoken.

Loading the CA bundle into a context costs ~25 ms. Every delivery used to pay it
(a scheduler running many syncs paid it once per sync), also when the base URL
was plain HTTP (the local emulator), which never uses it.
"""

from __future__ import annotations

import ssl
import threading
import urllib.request
from urllib.parse import urlsplit

import httpx

_lock = threading.Lock()
_verifying: ssl.SSLContext | None = None


def verifying_context() -> ssl.SSLContext:
    """httpx's default (certificate-verifying) TLS context, built on first use."""
    global _verifying
    with _lock:  # deliveries may start on several threads (an orchestrator's)
        if _verifying is None:
            _verifying = httpx.create_ssl_context()
        return _verifying


def proxy_in_environment() -> bool:
    """True when the environment names an HTTP(S) proxy (``HTTPS_PROXY`` and the like)."""
    return any(scheme in ("http", "https", "all") for scheme in urllib.request.getproxies())


def lane_context(base_url: str) -> ssl.SSLContext:
    """The context for lanes sending to ``base_url``.

    The verifying one, unless the URL is plain HTTP reached directly (no proxy in the
    environment): then no TLS handshake ever happens, and the context httpx still
    wants is one that loads no certificates.
    """
    if urlsplit(base_url).scheme.lower() == "http" and not proxy_in_environment():
        return httpx.create_ssl_context(verify=False)
    return verifying_context()
