"""The ``reverse-etl`` command: a thin layer over :mod:`reverse_etl.api`.

Every deliberate error ends as one line on stderr and a documented exit code
(0 ok, 1 config/usage, 2 source, 3 partial delivery, 4 fatal); never a traceback
unless ``--debug`` is given.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from reverse_etl import api
from reverse_etl.errors import ReverseEtlError
from reverse_etl.run.outcome import INTERRUPTED_MESSAGE
from reverse_etl.run.results import RunResult, SyncResult

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn library errors into one line and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        try:
            return func(*args, **kwargs)
        except ReverseEtlError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail(INTERRUPTED_MESSAGE, 130)
        except Exception as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            _fail(f"internal error ({type(exc).__name__}: {first}); rerun with --debug and report it", 4)
        return None

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--project", "-p", "project", default=".", type=click.Path(path_type=Path),
              help="Project directory holding syncs.yml (default: current directory).")
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.version_option(package_name="reverse_etl")
@click.pass_context
def main(ctx: click.Context, project: Path, debug: bool) -> None:
    """Sync warehouse models into Insider One, sending only what changed.

    Exit codes: 0 ok, 1 config or usage error, 2 warehouse (source) error,
    3 partial delivery (some rows rejected; see `reverse-etl rejected`), 4 fatal,
    130 interrupted.
    """
    ctx.ensure_object(dict)
    ctx.obj["project"] = project
    ctx.obj["debug"] = debug


def _project(ctx: click.Context) -> Path:
    return Path(ctx.obj["project"])


select_option = click.option("--select", "-s", "select", multiple=True,
                             help="Sync name, tag:TAG or model:MODEL (repeatable).")
exclude_option = click.option("--exclude", "exclude", multiple=True, help="Syncs to leave out (same syntax).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")


@main.command()
@click.option("--check-source", is_flag=True, help="Also run each model with LIMIT 0 on the warehouse.")
@click.pass_context
@handle_errors
def validate(ctx: click.Context, check_source: bool) -> None:
    """Check syncs.yml, models and mappings (and the warehouse with --check-source)."""
    project = api.validate(_project(ctx), check_source=check_source)
    names = ", ".join(s.name for s in project.config.syncs)
    click.echo(f"ok: {project.config_path.name} is valid ({len(project.config.syncs)} syncs: {names})")


@main.command()
@select_option
@exclude_option
@click.option("--full-refresh", is_flag=True, help="Plan as if the snapshot were empty.")
@json_option
@click.pass_context
@handle_errors
def plan(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], full_refresh: bool,
         as_json: bool) -> None:
    """Dry run: what each sync would send. Sends nothing, commits nothing."""
    result = api.plan(_project(ctx), select=select, exclude=exclude, full_refresh=full_refresh)
    if as_json:
        click.echo(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        for sync in result.syncs:
            _print_plan(sync)
    sys.exit(0 if result.exit_code == 3 else result.exit_code)


@main.command()
@select_option
@exclude_option
@click.option("--full-refresh", is_flag=True, help="Ignore the snapshot: resend every row.")
@click.option("--dbt-run-results", type=click.Path(path_type=Path), default=None,
              help="Run only syncs whose dbt models succeeded in this run_results.json.")
@json_option
@click.pass_context
@handle_errors
def run(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], full_refresh: bool,
        dbt_run_results: Path | None, as_json: bool) -> None:
    """Send what changed since the last run, and commit what Insider acknowledged."""
    from reverse_etl.cli.progress import progress_reporter

    with progress_reporter(enabled=not as_json) as progress:
        result = api.run(_project(ctx), select=select, exclude=exclude, full_refresh=full_refresh,
                         dbt_run_results=dbt_run_results, progress=progress)
    if as_json:
        click.echo(orjson.dumps(result.to_dict()).decode())
    else:
        _print_run(result)
    sys.exit(result.exit_code)


@main.command()
@click.argument("sync", required=False)
@click.option("--limit", default=20, show_default=True, help="Show the last N runs.")
@json_option
@click.pass_context
@handle_errors
def history(ctx: click.Context, sync: str | None, limit: int, as_json: bool) -> None:
    """The run ledger: counts, durations and outcome of past runs."""
    records = api.history(_project(ctx), sync, limit)
    if as_json:
        click.echo(orjson.dumps([r.__dict__ for r in records]).decode())
        return
    if not records:
        click.echo("no runs recorded yet")
        return
    for r in records:
        c = r.counts
        click.echo(
            f"{r.started_at}  {r.sync:<24} {r.outcome:<9} {r.seconds:>7.2f}s  "
            f"+{c.get('added', 0)} ~{c.get('changed', 0)} -{c.get('removed', 0)} "
            f"acked {c.get('acked', 0)} rejected {c.get('rejected', 0) + c.get('invalid', 0)}"
            + (f"  ({r.full_resend_reason})" if r.full_resend_reason else "")
            + (f"  error: {r.error}" if r.error else ""))


@main.command()
@click.argument("sync")
@click.option("--limit", default=50, show_default=True, help="Show at most N rows.")
@json_option
@click.pass_context
@handle_errors
def rejected(ctx: click.Context, sync: str, limit: int, as_json: bool) -> None:
    """Rows a sync holds back, with Insider's (or the validator's) reason."""
    total, rows = api.rejected_rows(_project(ctx), sync, limit)
    if as_json:
        click.echo(orjson.dumps({"total": total, "rows": rows}).decode())
        return
    if total == 0:
        click.echo(f"{sync}: no rejected rows")
        return
    click.echo(f"{sync}: {total} rejected row(s)" + (f", showing {len(rows)}" if len(rows) < total else ""))
    for row in rows:
        click.echo(f"  key={row['key']}  [{row['kind']}, {row['attempts']} attempt(s)]  {row['reason']}")


@main.command()
@click.argument("sync")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--forget-everything", is_flag=True,
              help="Also forget the snapshot kept aside: NULLs and users who left are then never cleared.")
@click.pass_context
@handle_errors
def reset(ctx: click.Context, sync: str, yes: bool, forget_everything: bool) -> None:
    """Forget a sync's snapshot: its next run resends every row."""
    if not yes and sys.stdin.isatty():
        click.confirm(f"Forget the snapshot of {sync!r}? The next run resends every row", abort=True)
    done = api.reset(_project(ctx), sync, forget_everything=forget_everything)
    click.echo(f"{sync}: {done}" if done else f"{sync}: had no state")


@main.command()
@click.argument("export")
@click.option("--force", is_flag=True,
              help="Skip the local once-per-UTC-day check (Insider may still answer 429).")
@click.option("--from-url", "from_url", default=None,
              help="Load a file link Insider already sent (no new export request).")
@json_option
@click.pass_context
@handle_errors
def pull(ctx: click.Context, export: str, force: bool, from_url: str | None, as_json: bool) -> None:
    """Request Insider's raw data export EXPORT and load it into the warehouse."""
    from reverse_etl.insider.pull.api import pull as pull_export
    from reverse_etl.insider.pull.progress import pull_reporter

    with pull_reporter(enabled=not as_json) as progress:
        result = pull_export(_project(ctx), export, force=force, from_url=from_url,
                             progress=progress)
    if as_json:
        click.echo(orjson.dumps(result.to_dict()).decode())
        return
    click.echo(f"{result.export}: loaded {result.rows} row(s) into {result.warehouse} table "
               f"{result.table} ({result.mode}, {result.format}, {result.bytes:,} bytes, "
               f"{result.seconds:.2f}s)")
    if result.renamed:
        click.echo("  custom fields: " + ", ".join(f"{k} -> {v}" for k, v in result.renamed.items()))
    if result.kept_prefix:
        click.echo("  kept the c_ prefix (plain name taken): " + ", ".join(result.kept_prefix))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=int)
@click.option("--partner", default="local", show_default=True, help="Partner name the emulator accepts.")
@click.option("--api-key", envvar="INSIDER_API_KEY", default="local-key", show_default=False,
              help="API key the emulator accepts (default: $INSIDER_API_KEY or 'local-key').")
@handle_errors
def emulator(host: str, port: int, partner: str, api_key: str) -> None:
    """Run the local Insider One emulator (for development and tests)."""
    from reverse_etl.insider.emulator import serve

    serve(host=host, port=port, partner=partner, api_key=api_key)


# ------------------------------------------------------------------ output
def _counts_line(sync: SyncResult) -> str:
    c = sync.counts
    return (f"added {c.get('added', 0)}, changed {c.get('changed', 0)}, removed {c.get('removed', 0)}, "
            f"unchanged {c.get('unchanged', 0)}, invalid {c.get('invalid', 0)}")


def _print_plan(sync: SyncResult) -> None:
    if sync.outcome == "failed":
        click.echo(f"{sync.sync}: cannot plan: {sync.message}", err=True)
        return
    click.echo(f"{sync.sync}: {_counts_line(sync)}; would send {sync.counts.get('to_send', 0)} operation(s)")
    if sync.full_resend_reason:
        click.echo(f"  full resend: {sync.full_resend_reason}")
    if sync.counts.get("held_back"):
        click.echo(f"  held back after max attempts: {sync.counts['held_back']}")
    for op, payloads in sync.samples.items():
        for payload in payloads:
            click.echo(f"  {op}: {payload}")
    for row in sync.rejected_samples:
        click.echo(f"  invalid: key={row['key']}: {row['reason']}")


def _print_run(result: RunResult) -> None:
    if not result.syncs:
        click.echo("no sync selected; nothing to do")
    for sync in result.syncs:
        if sync.outcome == "skipped":
            click.echo(f"{sync.sync}: skipped: {sync.message}")
            continue
        if sync.outcome in ("failed", "interrupted") and not sync.counts.get("to_send"):
            click.echo(f"{sync.sync}: failed: {sync.message}", err=True)
            continue
        c = sync.counts
        line = (f"{sync.sync}: {sync.outcome}: {_counts_line(sync)}; sent {c.get('to_send', 0)} "
                f"in {sync.requests} request(s), acknowledged {c.get('acked', 0)}, "
                f"rejected {c.get('rejected', 0)}, failed {c.get('failed', 0)} "
                f"({sync.seconds.get('total', 0):.2f}s)")
        click.echo(line)
        if sync.full_resend_reason:
            click.echo(f"  full resend: {sync.full_resend_reason}")
        if c.get("recovered"):
            click.echo(f"  recovered {c['recovered']} acknowledged row(s) from an interrupted run")
        if sync.message:
            click.echo(f"  {sync.message}", err=sync.outcome == "failed")
        for note in sync.notes:
            click.echo(f"  note: {note}")


from reverse_etl.cli import state_commands  # noqa: E402, F401  (registers `reverse-etl state`)
