"""Snowflake source: snowflake-connector-python, results fetched as Arrow batches.

- Authentication by password or key pair (a PEM/DER private key loaded with
  ``cryptography``, optionally encrypted with a passphrase).
- Every session carries the config's ``query_tag``, so runs can be found in
  Snowflake's query history.
- Unquoted (upper-case) column names come back lower case; VARIANT / ARRAY /
  OBJECT columns, which the connector returns as JSON text, are decoded by
  :mod:`reverse_etl.warehouses.variant`.
- Connection and query failures become a one-line :class:`SourceError` that
  never contains the password or key passphrase.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from reverse_etl.errors import SourceError
from reverse_etl.project.config import SnowflakeSourceConfig
from reverse_etl.warehouses.normalize import one_line, result_names, stable_reader
from reverse_etl.warehouses.variant import JsonDecoder, Kind

DEFAULT_LOGIN_TIMEOUT = 30
"""Seconds the connector keeps retrying a login before giving up."""

INSTALL_HINT = "pip install 'reverse_etl[snowflake]'"

# How a JSON-text column of each Snowflake type defaults when it holds only NULLs.
_JSON_TYPES: dict[str, Kind] = {"VARIANT": "scalar", "ARRAY": "list", "OBJECT": "text"}


def _connector() -> Any:
    try:
        import snowflake.connector
    except ImportError:
        raise SourceError(
            f"the Snowflake source needs snowflake-connector-python: {INSTALL_HINT}"
        ) from None
    return snowflake.connector


def load_private_key(path: str | Path, passphrase: str | None) -> bytes:
    """Read a PEM or DER private key and return it as unencrypted PKCS#8 DER bytes.

    This is the form the connector's ``private_key`` parameter takes. Errors name
    the file and what to do, never the passphrase.
    """
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise SourceError(f"key-pair authentication needs cryptography: {INSTALL_HINT}") from None
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read Snowflake private key {path}: {exc.strerror}") from None
    password = passphrase.encode() if passphrase else None
    load = (
        serialization.load_pem_private_key
        if data.lstrip().startswith(b"-----")
        else serialization.load_der_private_key
    )
    try:
        key = load(data, password=password)
    except TypeError:
        # cryptography raises TypeError when encryption and passphrase disagree.
        fix = (
            "remove private_key_passphrase"
            if password
            else "set private_key_passphrase (e.g. \"{{ env_var('SNOWFLAKE_PRIVATE_KEY_PASSPHRASE') }}\")"
        )
        state = "not encrypted" if password else "encrypted"
        raise SourceError(f"Snowflake private key {path} is {state}: {fix}") from None
    except ValueError:
        raise SourceError(
            f"cannot load Snowflake private key {path}: the passphrase is wrong or the file "
            "is not a PEM/DER private key"
        ) from None
    return key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def connect_kwargs(config: SnowflakeSourceConfig, root: str | Path | None = None) -> dict[str, Any]:
    """Keyword arguments for ``snowflake.connector.connect`` built from the config.

    With both a password and a private key configured, the key pair wins (it is
    what Snowflake recommends for service users).
    """
    kwargs: dict[str, Any] = {
        "account": config.account,
        "user": config.user,
        "session_parameters": {"QUERY_TAG": config.query_tag},
        "login_timeout": int(getattr(config, "login_timeout_seconds", DEFAULT_LOGIN_TIMEOUT)),
        # Models read; nothing this source runs needs a transaction.
        "autocommit": True,
    }
    network_timeout = getattr(config, "network_timeout_seconds", None)
    if network_timeout is not None:
        kwargs["network_timeout"] = int(network_timeout)
    for name in ("role", "warehouse", "database", "host", "port", "protocol"):
        if (value := getattr(config, name)) is not None:
            kwargs[name] = value
    if config.schema_ is not None:
        kwargs["schema"] = config.schema_
    if config.private_key_path is not None:
        key_path = Path(config.private_key_path).expanduser()
        if root is not None and not key_path.is_absolute():
            key_path = Path(root) / key_path
        passphrase = config.private_key_passphrase
        kwargs["private_key"] = load_private_key(
            key_path, passphrase.get_secret_value() if passphrase else None
        )
        kwargs["authenticator"] = "SNOWFLAKE_JWT"
    elif config.password is not None:
        kwargs["password"] = config.password.get_secret_value()
    return kwargs


class SnowflakeSource:
    """A Snowflake connection that streams a model's result as Arrow record batches."""

    dialect = "snowflake"

    def __init__(self, config: SnowflakeSourceConfig, root: str | Path | None = None) -> None:
        connector = _connector()
        self._errors = connector.errors
        self._secrets = [
            s.get_secret_value() if s else None
            for s in (config.password, config.private_key_passphrase)
        ]
        where = f"account {config.account!r} as user {config.user!r}"
        if config.host:
            where += f" at {config.host}:{config.port or 443}"
        try:
            self._conn = connector.connect(**connect_kwargs(config, root))
        except connector.errors.Error as exc:
            raise SourceError(f"cannot connect to Snowflake {where}: {self._message(exc)}") from None
        self._decoders: list[JsonDecoder] = []

    def fetch(self, sql: str, batch_size: int = 100_000) -> pa.RecordBatchReader:
        """Run ``sql`` and stream its result, batches of at most ``batch_size`` rows."""
        from snowflake.connector.constants import FIELD_ID_TO_NAME

        cursor = self._conn.cursor()
        try:
            cursor.execute(sql)
            chunks = self._arrow_chunks(cursor)
        except self._errors.NotSupportedError:
            cursor.close()
            raise SourceError(
                "Snowflake returned no rows to fetch: a model must be a query (SELECT ...)"
            ) from None
        except self._errors.Error as exc:
            cursor.close()
            raise SourceError(f"Snowflake query failed: {self._message(exc)}") from None
        description = cursor.description or []
        raw_names = [column.name for column in description]
        names = result_names(raw_names, fold_upper=True)
        json_columns = {
            i: _JSON_TYPES[kind]
            for i, column in enumerate(description)
            if (kind := FIELD_ID_TO_NAME[column.type_code]) in _JSON_TYPES
        }
        decoder = JsonDecoder(json_columns, dict(enumerate(names))) if json_columns else None
        if decoder is not None:
            self._decoders.append(decoder)
        return stable_reader(chunks, names=names, batch_size=batch_size, decoder=decoder)

    @property
    def connection(self) -> Any:
        """The open connector connection (the warehouse engine runs its own statements on it)."""
        return self._conn

    def describe_error(self, exc: BaseException) -> str:
        """One line from a driver error, with every configured secret masked."""
        return self._message(exc)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        for decoder in self._decoders:
            decoder.close()
        self._decoders.clear()
        # Closing a session that is already gone is not worth an error.
        with contextlib.suppress(self._errors.Error):
            self._conn.close()

    def _arrow_chunks(self, cursor: Any) -> Iterator[pa.RecordBatch]:
        try:
            # Microsecond timestamps keep one schema across chunks (and dates past 2262).
            tables = cursor.fetch_arrow_batches(force_microsecond_precision=True)
        except TypeError:  # older connectors have no such option
            tables = cursor.fetch_arrow_batches()

        def chunks() -> Iterator[pa.RecordBatch]:
            try:
                empty = True
                for table in tables:
                    for batch in table.to_batches():
                        empty = False
                        yield batch
                if empty:
                    # No chunk at all: the connector builds an empty table with the
                    # result's schema from the column metadata.
                    schema = cursor.fetch_arrow_all(force_return_table=True).schema
                    yield pa.RecordBatch.from_pylist([], schema=schema)
            except self._errors.Error as exc:
                raise SourceError(f"Snowflake fetch failed: {self._message(exc)}") from None
            finally:
                cursor.close()

        return chunks()

    def _message(self, exc: BaseException) -> str:
        # msg is the server's text (with error code and SQL state), without the
        # connector's extra decorations that str() may add.
        text = getattr(exc, "msg", None) or str(exc)
        return one_line(text, secrets=self._secrets)
