"""Logging for the CLI: the ``reverse_etl`` logger to stderr, redacted.

Warnings show by default; ``-v`` adds info, ``-vv`` debug; ``-q`` leaves only
errors. ``--log-format json`` writes one JSON object per line for log shippers.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from reverse_etl.redact import redact

LOGGER_NAME = "reverse_etl"


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def __init__(self, json_lines: bool) -> None:
        super().__init__()
        self.json_lines = json_lines

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = redact(record.getMessage())
            if self.json_lines:
                line = orjson.dumps({
                    "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                    "level": record.levelname.lower(),
                    "logger": record.name,
                    "message": message,
                }).decode()
            else:
                line = f"{record.levelname.lower()}: {message}"
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except Exception:  # a log line must never break a run
            self.handleError(record)


def configure_logging(verbose: int, quiet: bool, log_format: str) -> None:
    """Route the ``reverse_etl`` logger to stderr at the level the flags ask for."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if isinstance(handler, _StderrHandler):
            logger.removeHandler(handler)
    if quiet:
        level = logging.ERROR
    elif verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1:
        level = logging.INFO
    else:
        level = logging.WARNING
    logger.setLevel(level)
    logger.addHandler(_StderrHandler(json_lines=log_format == "json"))
