"""``reverse-etl mcp``: serve the project to AI assistants over MCP (stdio)."""

from __future__ import annotations

import click

from reverse_etl.cli import _project, _target, handle_errors, main, project_option, target_option
from reverse_etl.errors import UsageError


@main.command("mcp")
@click.option("--allow-runs", is_flag=True, default=False,
              help="Let the run_sync tool send data (each call still needs confirm=true). Default: read-only.")
@project_option
@target_option
@click.pass_context
@handle_errors
def mcp_command(ctx: click.Context, allow_runs: bool) -> None:
    """Serve this project over the Model Context Protocol on stdin/stdout.

    Tools: list_syncs, plan_sync, run_sync (with --allow-runs), history,
    rejected_rows. Needs the MCP SDK: pip install 'reverse_etl[mcp]'.
    """
    try:
        from reverse_etl.mcp.server import serve
    except ImportError as exc:  # the extra is not installed: one line, exit 1
        raise UsageError(str(exc)) from None
    from reverse_etl import api

    api.load_project(_project(ctx), target=_target(ctx))  # a broken project: one line, exit 1, no server
    # stdout carries the protocol: nothing else may be printed there.
    serve(_project(ctx), target=_target(ctx), allow_runs=allow_runs)
