"""Fixtures of the alert tests: the local receivers of :mod:`alert_receivers`."""

from __future__ import annotations

from alert_receivers import smtp_server, webhook

__all__ = ["smtp_server", "webhook"]
