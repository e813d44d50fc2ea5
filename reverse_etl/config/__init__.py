"""Project configuration: syncs.yml schema and loader."""

from __future__ import annotations

from reverse_etl.config.loader import load_project
from reverse_etl.config.schema import Project, ProjectConfig, SyncConfig

__all__ = ["Project", "ProjectConfig", "SyncConfig", "load_project"]
