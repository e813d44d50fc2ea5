"""``reverse-etl serve``: one long-running process for a project.

Schedules (:mod:`.scheduler`), a run queue that never runs one sync twice at once
and coalesces overlapping triggers (:mod:`.queue`), HTTP triggers and webhooks
(:mod:`.app`, :mod:`.auth`, :mod:`.webhooks`), server-rendered pages
(:mod:`.pages`), ``/metrics`` (:mod:`.metrics`) and optional OpenTelemetry traces
(:mod:`.tracing`). Everything it reads about runs comes through :mod:`reverse_etl.api`.
"""

from __future__ import annotations

from reverse_etl.serve.server import ServeOptions, build_service, serve

__all__ = ["ServeOptions", "build_service", "serve"]
