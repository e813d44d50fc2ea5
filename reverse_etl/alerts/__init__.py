"""Alerts: tell someone when a sync failed, refused too many rows, or has gone stale.

:mod:`.message` says what an alert holds, :mod:`.rules` decides which runs
alert, :mod:`.stale` finds syncs with no recent success, :mod:`.send` delivers
to webhooks, Slack-compatible webhooks and SMTP, and :mod:`.hook` ties them to
the end of every run. An alert that cannot be delivered is logged and noted on
the run's result; it never fails the run or changes its exit code.
"""

from __future__ import annotations

from reverse_etl.alerts.message import Alert
from reverse_etl.alerts.send import send_alert
from reverse_etl.alerts.stale import check_staleness

__all__ = ["Alert", "check_staleness", "send_alert"]
