"""Snowflake source through the real snowflake-connector-python against a fakesnow server."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from fakesnow_helpers import WRONG_PASSWORD, FakeSnowflake

from reverse_etl.errors import SourceError
from reverse_etl.project.config import SnowflakeSourceConfig
from reverse_etl.warehouses import open_source
from reverse_etl.warehouses.snowflake_source import SnowflakeSource

pytest.importorskip("snowflake.connector")
pytest.importorskip("fakesnow")

ROWS = 50_000


def _config(server: FakeSnowflake, database: str, **overrides: object) -> SnowflakeSourceConfig:
    return SnowflakeSourceConfig.model_validate(server.config(database, **overrides))


def _seed_customers(server: FakeSnowflake, database: str) -> None:
    server.execute(
        database,
        'CREATE TABLE customers (CUSTOMER_ID INT, EMAIL VARCHAR, "MixedCase" VARCHAR, '
        "TAGS ARRAY, SCORES ARRAY, PROPS OBJECT, NICKNAME VARIANT, LTV NUMBER(10, 2), "
        "SIGNED_UP TIMESTAMP_NTZ)",
        f"""INSERT INTO customers
            SELECT seq4(), 'u' || seq4() || '@example.com', 'm' || seq4(),
                   array_construct('t' || (seq4() % 3), 'x'), array_construct(seq4(), 2),
                   object_construct('k', seq4()), to_variant('nick' || seq4()),
                   seq4() * 1.25, '2026-01-01 00:00:00'::TIMESTAMP
            FROM table(generator(rowcount => {ROWS}))""",
    )


def test_fetch_streams_arrow_batches_with_lowercase_names_and_decoded_json(
    fakesnow_server: FakeSnowflake, database: str
) -> None:
    _seed_customers(fakesnow_server, database)
    source = open_source(_config(fakesnow_server, database), root=".")
    try:
        assert source.dialect == "snowflake"
        reader = source.fetch("SELECT * FROM customers ORDER BY customer_id", batch_size=10_000)
        batches = list(reader)
    finally:
        source.close()

    assert len(batches) >= ROWS // 10_000
    assert all(b.num_rows <= 10_000 for b in batches)
    table = pa.Table.from_batches(batches, schema=reader.schema)
    assert table.num_rows == ROWS
    assert table.schema.names == [
        "customer_id", "email", "MixedCase", "tags", "scores", "props", "nickname", "ltv", "signed_up",
    ]
    types = {f.name: f.type for f in table.schema}
    assert types["customer_id"] == pa.int64()
    assert types["tags"] == pa.list_(pa.string())
    assert types["scores"] == pa.list_(pa.int64())
    assert types["props"] == pa.string()  # objects stay JSON text; the engine rejects them
    assert types["nickname"] == pa.string()
    assert pa.types.is_decimal(types["ltv"])
    assert pa.types.is_timestamp(types["signed_up"])

    row = table.slice(7, 1).to_pylist()[0]
    assert row["customer_id"] == 7
    assert row["email"] == "u7@example.com"
    assert row["MixedCase"] == "m7"
    assert row["tags"] == ["t1", "x"]
    assert row["scores"] == [7, 2]
    assert row["props"].replace(" ", "").replace("\n", "") in ('{"k":7}', '{"K":7}')
    assert row["nickname"] == "nick7"  # a VARIANT string loses its JSON quotes
    assert float(row["ltv"]) == 8.75


def test_query_tag_is_sent_as_a_session_parameter(
    fakesnow_server: FakeSnowflake, database: str
) -> None:
    # fakesnow keeps no query history, so the test reads the login request the
    # connector sent: that is where Snowflake takes session parameters from.
    config = _config(fakesnow_server, database, query_tag="reverse_etl:nightly")
    source = open_source(config, root=".")
    source.close()
    login = fakesnow_server.gate.logins[-1]
    assert login["SESSION_PARAMETERS"]["QUERY_TAG"] == "reverse_etl:nightly"
    assert login["LOGIN_NAME"] == "reverse_etl_test"


def test_empty_result_keeps_the_schema(fakesnow_server: FakeSnowflake, database: str) -> None:
    fakesnow_server.execute(database, "CREATE TABLE t (ID INT, TAGS ARRAY, NOTE VARIANT)")
    source = open_source(_config(fakesnow_server, database), root=".")
    try:
        table = source.fetch("SELECT * FROM t").read_all()
    finally:
        source.close()
    assert table.num_rows == 0
    assert table.schema.names == ["id", "tags", "note"]
    assert table.schema.field("id").type == pa.int64()


def test_key_pair_authentication_signs_the_login_with_the_configured_key(
    fakesnow_server: FakeSnowflake, database: str, tmp_path: Path
) -> None:
    jwt = pytest.importorskip("jwt")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "rsa_key.p8").write_bytes(key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"key-passphrase-123"),
    ))
    fakesnow_server.execute(database, "CREATE TABLE t AS SELECT 1 AS ID")
    config = _config(
        fakesnow_server, database, password=None,
        private_key_path="rsa_key.p8", private_key_passphrase="key-passphrase-123",
    )
    # A relative key path is relative to the project root.
    source = SnowflakeSource(config, root=tmp_path)
    try:
        assert source.fetch("SELECT id FROM t").read_all().to_pylist() == [{"id": 1}]
    finally:
        source.close()

    login = fakesnow_server.gate.logins[-1]
    assert login["AUTHENTICATOR"] == "SNOWFLAKE_JWT"
    assert "PASSWORD" not in login
    claims = jwt.decode(login["TOKEN"], key.public_key(), algorithms=["RS256"])
    assert claims["sub"].endswith(".REVERSE_ETL_TEST")


def test_key_pair_errors_name_the_fix_and_never_the_passphrase(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encrypted = tmp_path / "encrypted.p8"
    encrypted.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"right-passphrase"),
    ))
    base = {"type": "snowflake", "account": "a", "user": "u", "host": "127.0.0.1", "port": 9}

    def error(**fields: object) -> str:
        config = SnowflakeSourceConfig.model_validate({**base, **fields})
        with pytest.raises(SourceError) as info:
            open_source(config, root=str(tmp_path))
        return str(info.value)

    wrong = error(private_key_path=str(encrypted), private_key_passphrase="wrong-passphrase")
    assert "passphrase is wrong" in wrong and "wrong-passphrase" not in wrong
    assert "set private_key_passphrase" in error(private_key_path=str(encrypted))
    assert "cannot read" in error(private_key_path="missing.p8")


def test_wrong_password_is_a_one_line_source_error_without_the_password(
    fakesnow_server: FakeSnowflake, database: str
) -> None:
    config = _config(fakesnow_server, database, password=WRONG_PASSWORD)
    with pytest.raises(SourceError) as info:
        open_source(config, root=".")
    message = str(info.value)
    assert "\n" not in message
    assert WRONG_PASSWORD not in message
    assert "Incorrect username or password" in message
    assert "reverse_etl_test" in message


def test_unreachable_warehouse_fails_fast_with_one_line(database: str) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = SnowflakeSourceConfig.model_validate({
        "type": "snowflake", "account": "acme", "user": "loader", "password": "hunter2-secret",
        "host": "127.0.0.1", "port": port, "protocol": "http", "database": database,
    })
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        open_source(config, root=".")
    assert time.monotonic() - started < 20
    message = str(info.value)
    assert "\n" not in message and "hunter2-secret" not in message
    assert message.startswith(f"cannot connect to Snowflake account 'acme' as user 'loader' at 127.0.0.1:{port}")


def test_broken_sql_is_a_one_line_source_error(fakesnow_server: FakeSnowflake, database: str) -> None:
    source = open_source(_config(fakesnow_server, database), root=".")
    try:
        with pytest.raises(SourceError) as info:
            source.fetch("SELECT * FROM no_such_table")
    finally:
        source.close()
    assert "\n" not in str(info.value)
    assert "NO_SUCH_TABLE" in str(info.value).upper()


def test_missing_connector_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "snowflake.connector", None)
    config = SnowflakeSourceConfig.model_validate(
        {"type": "snowflake", "account": "a", "user": "u", "password": "p"}
    )
    with pytest.raises(SourceError, match=r"pip install 'reverse_etl\[snowflake\]'"):
        open_source(config, root=".")
