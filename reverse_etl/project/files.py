"""Reading the project's text files (syncs.yml, models, dbt's YAML) as UTF-8, with one-line errors."""

from __future__ import annotations

from pathlib import Path

from reverse_etl.errors import ConfigError


def read_text(path: Path, display: str | None = None) -> str:
    """A UTF-8 text file; :class:`ConfigError` naming the line of the first bad byte.

    ``display`` is the name the message uses (default: the file's name).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{display or path.name}: cannot read ({exc.strerror}); check the path") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{display or path.name}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        ) from None
