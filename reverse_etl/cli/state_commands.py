"""``reverse-etl state ...``: where a project's state lives, and moving it elsewhere."""

from __future__ import annotations

import click

from reverse_etl import api
from reverse_etl.cli import _project, _target, handle_errors, main, target_option


@main.group("state")
def state_group() -> None:
    """Inspect or move the project's state (snapshots, journals, rejected rows, ledger)."""


@state_group.command("copy")
@click.option("--to", "to", required=True,
              help="Destination: s3://bucket/prefix (gs://, az://) or a local directory.")
@target_option
@click.pass_context
@handle_errors
def copy(ctx: click.Context, to: str) -> None:
    """Copy every sync's state to TO, each under its lock, journals included.

    Then point ``state: path:`` in syncs.yml at TO; the old state is left as it was.
    """
    from reverse_etl.state.copy import copy_state

    project = api.load_project(_project(ctx), target=_target(ctx))
    report = copy_state(project.state_dir, project.config.state,
                        [s.name for s in project.config.syncs], to, base=project.root)
    click.echo(f"copied the state of {len(report.syncs)} sync(s) ({', '.join(report.syncs) or 'none'}) "
               f"and {report.runs} ledger record(s) to {report.destination}")
    click.echo(f"now set `state: {{path: {to}}}` in {project.config_path.name}")


@state_group.command("where")
@target_option
@click.pass_context
@handle_errors
def where(ctx: click.Context) -> None:
    """Say where the project's state lives (and its local working copy, for an object store)."""
    project = api.load_project(_project(ctx), target=_target(ctx))
    url = project.config.state.url
    if url is None:
        click.echo(str(project.state_dir))
    else:
        click.echo(f"{url} (working copy: {project.state_dir})")
