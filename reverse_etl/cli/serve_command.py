"""``reverse-etl serve``: schedules, HTTP triggers, pages, /metrics for one project."""

from __future__ import annotations

import click

from reverse_etl.cli import _project, _target, handle_errors, main, target_option
from reverse_etl.redact import redact


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option("--token-env", default="REVERSE_ETL_SERVE_TOKEN", show_default=True,
              help="Variable holding the bearer token that may trigger runs (unset: triggers are refused).")
@click.option("--dbt-cloud-secret-env", default="REVERSE_ETL_DBT_CLOUD_SECRET", show_default=True,
              help="Variable holding the dbt Cloud webhook secret (HMAC-SHA256).")
@click.option("--github-secret-env", default="REVERSE_ETL_GITHUB_SECRET", show_default=True,
              help="Variable holding the GitHub webhook secret (X-Hub-Signature-256).")
@click.option("--dbt-cloud-token-env", default="DBT_CLOUD_API_TOKEN", show_default=True,
              help="Variable holding a dbt Cloud API token, to fetch a job's run_results.json.")
@click.option("--dbt-cloud-url", default="https://cloud.getdbt.com", show_default=True,
              help="dbt Cloud's base URL (your account's access URL).")
@click.option("--traces", type=click.Choice(["otlp", "console"]), default=None,
              help="Export OpenTelemetry traces of runs and stages (otlp: OTEL_EXPORTER_OTLP_* variables).")
@click.option("--no-schedules", is_flag=True, help="Do not run schedules; accept triggers only.")
@target_option
@click.pass_context
@handle_errors
def serve(ctx: click.Context, host: str, port: int, token_env: str, dbt_cloud_secret_env: str,
          github_secret_env: str, dbt_cloud_token_env: str, dbt_cloud_url: str, traces: str | None,
          no_schedules: bool) -> None:
    """Run syncs on their schedules and on HTTP triggers; serve pages, /metrics and /healthz."""
    try:
        from reverse_etl.serve import ServeOptions
        from reverse_etl.serve import serve as run_server
    except ImportError as exc:
        raise click.UsageError(f"serve needs its extra ({exc.name} is missing): "
                               "pip install 'reverse_etl[serve]'") from None
    run_server(ServeOptions(project_dir=_project(ctx), target=_target(ctx), host=host, port=port,
                            token_env=token_env, dbt_cloud_secret_env=dbt_cloud_secret_env,
                            github_secret_env=github_secret_env, dbt_cloud_token_env=dbt_cloud_token_env,
                            dbt_cloud_url=dbt_cloud_url, traces=traces, schedules=not no_schedules),
               announce=lambda line: click.echo(redact(line), err=True))
