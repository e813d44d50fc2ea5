"""Without an integration's extra, its module and command say which extra to install."""

from __future__ import annotations

import importlib
import importlib.util

import pytest
from click.testing import CliRunner

from reverse_etl.cli import main

MODULES = {"dagster": "reverse_etl.integrations.dagster", "airflow": "reverse_etl.integrations.airflow",
           "prefect": "reverse_etl.integrations.prefect", "mcp": "reverse_etl.mcp.server"}
LIBRARY = {"dagster": "dagster", "airflow": "airflow", "prefect": "prefect", "mcp": "mcp"}


def _missing(extra: str) -> bool:
    return importlib.util.find_spec(LIBRARY[extra]) is None


@pytest.mark.parametrize("extra", sorted(MODULES))
def test_importing_an_integration_without_its_library_names_the_extra(extra: str) -> None:
    if not _missing(extra):
        pytest.skip(f"{LIBRARY[extra]} is installed here")
    with pytest.raises(ImportError, match=rf"pip install 'reverse_etl\[{extra}\]'"):
        importlib.import_module(MODULES[extra])


def test_the_mcp_command_without_the_sdk_is_one_line_and_exit_1() -> None:
    if not _missing("mcp"):
        pytest.skip("mcp is installed here")
    result = CliRunner().invoke(main, ["mcp"])
    assert result.exit_code == 1
    assert result.output.strip() == "error: reverse-etl mcp needs the MCP Python SDK: pip install 'reverse_etl[mcp]'"
