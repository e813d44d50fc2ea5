"""The ``reverse-etl`` command: a thin layer over :mod:`reverse_etl.api`.

Every deliberate error ends as one ``error:`` line on stderr and a documented exit
code (0 ok, 1 config/usage, 2 source, 3 partial delivery, 4 fatal, 130
interrupted); never a traceback unless ``--debug`` is given. Everything printed
passes through :func:`reverse_etl.redact.redact`.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from reverse_etl import api
from reverse_etl.cli.logs import configure_logging
from reverse_etl.errors import ReverseEtlError, UsageError
from reverse_etl.redact import redact, redact_value
from reverse_etl.run.outcome import INTERRUPTED_MESSAGE
from reverse_etl.run.results import RunResult, SyncResult

F = TypeVar("F", bound=Callable[..., Any])

EXIT_USAGE = 1
EXIT_INTERRUPTED = 130


def _echo(text: str, err: bool = False) -> None:
    click.echo(redact(text), err=err)


def _echo_json(value: Any, indent: bool = False) -> None:
    option = orjson.OPT_INDENT_2 if indent else 0
    _echo(orjson.dumps(redact_value(value), option=option, default=str).decode())


def _fail(message: str, code: int) -> None:
    _echo(f"error: {message}", err=True)
    sys.exit(code)


def _quiet_broken_pipe() -> None:
    """The reader of stdout went away (``| head``): stop without a word."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (a test runner)
        pass
    sys.exit(0)


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
            _fail(INTERRUPTED_MESSAGE, EXIT_INTERRUPTED)
        except BrokenPipeError:
            _quiet_broken_pipe()
        except Exception as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            _fail(f"internal error ({type(exc).__name__}: {first}); rerun with --debug and report it", 4)
        return None

    return wrapper  # type: ignore[return-value]


class _Cli(click.Group):
    """The command group, with click's usage errors (exit 2) turned into one line and exit 1.

    Exit code 2 means "the warehouse failed"; a mistyped option must not look like that.
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run the CLI; see :class:`_Cli`."""
        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            value = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            _echo(exc.ctx.get_help() if exc.ctx else "", err=True)
            sys.exit(EXIT_USAGE)
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx else "reverse-etl"
            message = " ".join(exc.format_message().split()).rstrip(".")
            _fail(f"{message}; see '{command} --help'", EXIT_USAGE)
        except click.ClickException as exc:
            _fail(" ".join(exc.format_message().split()), EXIT_USAGE)
        except click.Abort:
            _fail("aborted", EXIT_USAGE)
        except BrokenPipeError:
            _quiet_broken_pipe()
        sys.exit(value if isinstance(value, int) else 0)


def _set_project(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.ensure_object(dict)
        ctx.obj["project"] = value


project_option = click.option(
    "--project", "-p", "project", default=None, type=click.Path(path_type=Path), expose_value=False,
    callback=_set_project, is_eager=True,
    help="Project directory holding syncs.yml (also accepted before the command).")


def _set_target(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(dict)
        ctx.obj["target"] = value


_TARGET_HELP = ("Environment from `targets:` in syncs.yml (default: $REVERSE_ETL_TARGET, else `target:`); "
                "with a dbt profile as the source, also dbt's target.")
target_option = click.option("--target", "-t", "target", default=None, expose_value=False,
                             callback=_set_target, is_eager=True, help=_TARGET_HELP)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--project", "-p", "project", default=".", type=click.Path(path_type=Path),
              envvar="REVERSE_ETL_PROJECT", show_envvar=True,
              help="Project directory holding syncs.yml (default: current directory).")
@target_option
@click.option("--profiles-dir", "profiles_dir", default=None, type=click.Path(path_type=Path),
              help="Where dbt's profiles.yml is (a project with `dbt:` and no `source:`); "
                   "default: $DBT_PROFILES_DIR, the dbt project, ~/.dbt.")
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.option("-v", "--verbose", count=True, help="More log lines on stderr (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True, help="Log errors only (no warnings).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Log lines as text or as one JSON object per line.")
@click.version_option(package_name="reverse_etl")
@click.pass_context
def main(ctx: click.Context, project: Path, profiles_dir: Path | None, debug: bool, verbose: int,
         quiet: bool, log_format: str) -> None:
    """Sync warehouse models into Insider One, sending only what changed.

    Exit codes: 0 ok, 1 config or usage error, 2 warehouse (source) error,
    3 partial delivery (some rows rejected; see `reverse-etl rejected`), 4 fatal,
    130 interrupted.
    """
    ctx.ensure_object(dict)
    ctx.obj["project"] = project
    ctx.obj["debug"] = debug
    if profiles_dir is not None:  # read where dbt reads it, by every command and by pull
        os.environ["DBT_PROFILES_DIR"] = str(profiles_dir.resolve())
    configure_logging(verbose, quiet, log_format)


def _project(ctx: click.Context) -> Path:
    return Path(ctx.obj["project"])


def _target(ctx: click.Context) -> str | None:
    """The ``--target`` given before or after the command (None: the variable or the file decides)."""
    value = ctx.obj.get("target")
    return str(value) if value is not None else None


select_option = click.option("--select", "-s", "select", multiple=True,
                             help="Sync name, tag:TAG or model:MODEL (repeatable).")
exclude_option = click.option("--exclude", "exclude", multiple=True, help="Syncs to leave out (same syntax).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")


@main.command()
@click.option("--check-source", is_flag=True, help="Also run each model with LIMIT 0 on the warehouse.")
@project_option
@target_option
@click.pass_context
@handle_errors
def validate(ctx: click.Context, check_source: bool) -> None:
    """Check syncs.yml, models and mappings (and the warehouse with --check-source)."""
    project = api.validate(_project(ctx), check_source=check_source, target=_target(ctx))
    names = ", ".join(s.name for s in project.config.syncs)
    _echo(f"ok: {project.config_path.name} is valid ({len(project.config.syncs)} syncs: {names})")


@main.command()
@select_option
@exclude_option
@click.option("--full-refresh", is_flag=True, help="Plan as if the snapshot were empty.")
@json_option
@project_option
@target_option
@click.pass_context
@handle_errors
def plan(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], full_refresh: bool,
         as_json: bool) -> None:
    """Dry run: what each sync would send. Sends nothing, commits nothing."""
    result = api.plan(_project(ctx), select=select, exclude=exclude, full_refresh=full_refresh,
                      target=_target(ctx))
    if as_json:
        _echo_json(result.to_dict(), indent=True)
    else:
        if result.target:
            _echo(f"target: {result.target}")
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
@project_option
@target_option
@click.pass_context
@handle_errors
def run(ctx: click.Context, select: tuple[str, ...], exclude: tuple[str, ...], full_refresh: bool,
        dbt_run_results: Path | None, as_json: bool) -> None:
    """Send what changed since the last run, and commit what Insider acknowledged."""
    from reverse_etl.cli.progress import progress_reporter

    with progress_reporter(enabled=not as_json) as progress:
        result = api.run(_project(ctx), select=select, exclude=exclude, full_refresh=full_refresh,
                         dbt_run_results=dbt_run_results, progress=progress, target=_target(ctx))
    if as_json:
        _echo_json(result.to_dict())
    else:
        _print_run(result)
    sys.exit(result.exit_code)


@main.command()
@click.argument("sync", required=False)
@click.option("--limit", default=20, show_default=True, help="Show the last N runs.")
@json_option
@project_option
@target_option
@click.pass_context
@handle_errors
def history(ctx: click.Context, sync: str | None, limit: int, as_json: bool) -> None:
    """The run ledger: counts, durations and outcome of past runs."""
    records = api.history(_project(ctx), sync, limit, target=_target(ctx))
    if as_json:
        _echo_json([r.__dict__ for r in records])
        return
    if not records:
        _echo("no runs recorded yet")
        return
    for r in records:
        c = r.counts
        _echo(
            f"{r.started_at}  {r.sync:<24} {r.outcome:<9} {r.seconds:>7.2f}s  "
            f"+{c.get('added', 0)} ~{c.get('changed', 0)} -{c.get('removed', 0)} "
            f"acked {c.get('acked', 0)} rejected {c.get('rejected', 0) + c.get('invalid', 0)}"
            + (f"  ({r.full_resend_reason})" if r.full_resend_reason else "")
            + (f"  error: {r.error}" if r.error else ""))


@main.command()
@click.argument("sync")
@click.option("--limit", default=50, show_default=True, help="Show at most N rows.")
@json_option
@project_option
@target_option
@click.pass_context
@handle_errors
def rejected(ctx: click.Context, sync: str, limit: int, as_json: bool) -> None:
    """Rows a sync holds back, with Insider's (or the validator's) reason."""
    total, rows = api.rejected_rows(_project(ctx), sync, limit, target=_target(ctx))
    if as_json:
        _echo_json({"total": total, "rows": rows})
        return
    if total == 0:
        _echo(f"{sync}: no rejected rows")
        return
    _echo(f"{sync}: {total} rejected row(s)" + (f", showing {len(rows)}" if len(rows) < total else ""))
    for row in rows:
        _echo(f"  key={row['key']}  [{row['kind']}, {row['attempts']} attempt(s)]  {row['reason']}")


@main.command()
@click.argument("sync")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--forget-everything", is_flag=True,
              help="Also forget the snapshot kept aside: NULLs and users who left are then never cleared.")
@project_option
@target_option
@click.pass_context
@handle_errors
def reset(ctx: click.Context, sync: str, yes: bool, forget_everything: bool) -> None:
    """Forget a sync's snapshot: its next run resends every row."""
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"reset {sync} needs confirmation and stdin is not a terminal; pass --yes")
        click.confirm(f"Forget the snapshot of {sync!r}? The next run resends every row", abort=True)
    done = api.reset(_project(ctx), sync, forget_everything=forget_everything, target=_target(ctx))
    _echo(f"{sync}: {done}" if done else f"{sync}: had no state")


@main.command()
@click.argument("export")
@click.option("--force", is_flag=True,
              help="Skip the local once-per-UTC-day check (Insider may still answer 429).")
@click.option("--from-url", "from_url", default=None,
              help="Load a file link Insider already sent (no new export request).")
@json_option
@project_option
@target_option
@click.pass_context
@handle_errors
def pull(ctx: click.Context, export: str, force: bool, from_url: str | None, as_json: bool) -> None:
    """Request Insider's raw data export EXPORT and load it into the warehouse."""
    from reverse_etl.insider.pull.api import pull as pull_export
    from reverse_etl.insider.pull.progress import pull_reporter

    if _target(ctx) is not None:  # pull loads the project itself: it reads the variable
        os.environ["REVERSE_ETL_TARGET"] = str(_target(ctx))
    with pull_reporter(enabled=not as_json) as progress:
        result = pull_export(_project(ctx), export, force=force, from_url=from_url,
                             progress=progress)
    if as_json:
        _echo_json(result.to_dict())
        return
    _echo(f"{result.export}: loaded {result.rows} row(s) into {result.warehouse} table "
               f"{result.table} ({result.mode}, {result.format}, {result.bytes:,} bytes, "
               f"{result.seconds:.2f}s)")
    if result.renamed:
        _echo("  columns: " + ", ".join(f"{k} -> {v}" for k, v in result.renamed.items()))
    if result.kept_prefix:
        _echo("  kept a prefix (clean name taken): " + ", ".join(result.kept_prefix))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=int)
@click.option("--partner", default="local", show_default=True, help="Partner name the emulator accepts.")
@click.option("--api-key", envvar="INSIDER_API_KEY", default="local-key", show_default=False,
              help="API key the emulator accepts (default: $INSIDER_API_KEY or 'local-key').")
@click.option("--tenant-config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="JSON/YAML file of tenant settings: custom identifiers, PII attributes, "
                   "forbidden keys, event TTL, rate limits (see the README).")
@handle_errors
def emulator(host: str, port: int, partner: str, api_key: str, tenant_config: str | None) -> None:
    """Run the local Insider One emulator (for development and tests)."""
    from reverse_etl.insider.emulator import serve
    from reverse_etl.insider.emulator.tenant import load_tenant_config

    try:
        tenant = load_tenant_config(tenant_config) if tenant_config else {}
        tenant.setdefault("partner", partner)
        tenant.setdefault("api_key", api_key)
        serve(host=host, port=port, **tenant)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"--port {port}: {host}:{port} is already in use; pass --port with a free port") from None
        if exc.errno in (errno.EACCES, errno.EADDRNOTAVAIL):
            raise UsageError(f"--host {host} --port {port}: cannot listen there ({exc.strerror}); "
                             "pick another host or port") from None
        raise


@main.command()
@click.argument("directory", required=False, default=".", type=click.Path(path_type=Path))
@handle_errors
def init(directory: Path) -> None:
    """Write a starter project into DIRECTORY (default: the current directory)."""
    from reverse_etl.cli.starter import write_starter

    for path in write_starter(directory):
        _echo(f"wrote {path}")
    where = "" if directory == Path(".") else f"cd {directory} && "
    _echo(f"next: {where}cp .env.example .env && reverse-etl validate "
          "(and `reverse-etl emulator` in another terminal before plan/run)")


# ------------------------------------------------------------------ output
def _counts_line(sync: SyncResult) -> str:
    c = sync.counts
    return (f"added {c.get('added', 0)}, changed {c.get('changed', 0)}, removed {c.get('removed', 0)}, "
            f"unchanged {c.get('unchanged', 0)}, invalid {c.get('invalid', 0)}")


def _print_plan(sync: SyncResult) -> None:
    if sync.outcome == "failed":
        _echo(f"error: {sync.sync}: cannot plan: {sync.message}", err=True)
        return
    _echo(f"{sync.sync}: {_counts_line(sync)}; would send {sync.counts.get('to_send', 0)} operation(s)")
    if sync.full_resend_reason:
        _echo(f"  full resend: {sync.full_resend_reason}")
    if sync.counts.get("held_back"):
        _echo(f"  held back after max attempts: {sync.counts['held_back']}")
    for op, payloads in sync.samples.items():
        for payload in payloads:
            _echo(f"  {op}: {payload}")
    for row in sync.rejected_samples:
        _echo(f"  invalid: key={row['key']}: {row['reason']}")
    for note in sync.notes:  # e.g. the warehouse engine's rows scanned vs transferred
        _echo(f"  note: {note}")


def _print_run(result: RunResult) -> None:
    if result.target:
        _echo(f"target: {result.target}")
    if not result.syncs:
        _echo("no sync selected; nothing to do")
    for sync in result.syncs:
        if sync.outcome == "skipped":
            _echo(f"{sync.sync}: skipped: {sync.message}")
            continue
        if sync.outcome in ("failed", "interrupted") and not sync.counts.get("to_send"):
            _echo(f"error: {sync.sync}: {sync.outcome}: {sync.message}", err=True)
            continue
        c = sync.counts
        line = (f"{sync.sync}: {sync.outcome}: {_counts_line(sync)}; sent {c.get('to_send', 0)} "
                f"in {sync.requests} request(s), acknowledged {c.get('acked', 0)}, "
                f"rejected {c.get('rejected', 0)}, failed {c.get('failed', 0)} "
                f"({sync.seconds.get('total', 0):.2f}s)")
        _echo(line)
        if sync.full_resend_reason:
            _echo(f"  full resend: {sync.full_resend_reason}")
        if c.get("recovered"):
            _echo(f"  recovered {c['recovered']} acknowledged row(s) from an interrupted run")
        if sync.message:
            _echo(f"  {sync.message}", err=sync.outcome == "failed")
        for note in sync.notes:
            _echo(f"  note: {note}")


# Commands in their own modules register themselves on import.
from reverse_etl.cli import audit as audit_command  # noqa: E402, F401  (`reverse-etl audit`)
from reverse_etl.cli import mcp_command, serve_command, state_commands  # noqa: E402, F401  (`mcp`, `serve`, `state`)
