"""The ``User-Agent`` every request to Insider (and to its export storage) carries."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def _version() -> str:
    try:
        return version("reverse_etl")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


USER_AGENT = f"reverse_etl/{_version()} (+Insider One reverse ETL)"
"""``reverse_etl/<version> (+Insider One reverse ETL)``: says who sends the traffic."""
