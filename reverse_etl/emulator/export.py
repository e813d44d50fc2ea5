"""Placeholder, replaced below."""

from __future__ import annotations

from aiohttp import web

from .pipeline import Pipeline
from .state import EmulatorState


def setup(app: web.Application, state: EmulatorState, pipeline: Pipeline) -> None:
    """Register routes."""
