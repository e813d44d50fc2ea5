"""``reverse-etl audit SYNC``: what Insider holds, compared with the model; exit 3 on drift."""

from __future__ import annotations

import sys

import click

from reverse_etl import api
from reverse_etl.cli import (
    _echo,
    _echo_json,
    _project,
    _target,
    handle_errors,
    main,
    project_option,
    target_option,
)
from reverse_etl.errors import UsageError
from reverse_etl.insider.audit import AuditResult

_KINDS = {"missing": "missing at Insider", "removed_present": "present at Insider though the model removed them",
          "identifier": "with identifiers that differ", "attribute": "with attributes that differ",
          "event": "event(s) Insider no longer holds"}


@main.command("audit")
@click.argument("sync")
@click.option("--sample", "sample", type=click.IntRange(min=1), default=None,
              help="Read N random users through the profile endpoint (within its per-minute quota).")
@click.option("--full", is_flag=True, help="Read everything through the raw export (one per UTC day).")
@click.option("--segment", "segment_id", type=click.IntRange(min=1), default=None,
              help="The dynamic segment a full audit exports (it should hold every synced user).")
@click.option("--from-url", "from_url", default=None,
              help="Full audit of an export link Insider already sent today (no new export).")
@click.option("--force", is_flag=True, help="Skip the local once-per-UTC-day export check.")
@click.option("--repair", is_flag=True,
              help="Send what brings Insider back to the model (default: show what would be sent).")
@click.option("--examples", type=click.IntRange(min=0), default=5, show_default=True,
              help="Differences shown per kind.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report.")
@project_option
@target_option
@click.pass_context
@handle_errors
def audit(ctx: click.Context, sync: str, sample: int | None, full: bool, segment_id: int | None,
          from_url: str | None, force: bool, repair: bool, examples: int, as_json: bool) -> None:
    """Compare what Insider holds for SYNC with the model; exit 0 equal, 3 drifted.

    A sample audit (--sample N) reads N users through the profile endpoint; a full
    audit (--full --segment ID) reads one raw export. Without --repair, drift is
    shown with what a repair would send; --repair sends it as a normal, journaled
    run (in `reverse-etl history`) for exactly the drifted users.
    """
    if (sample is not None) == (full or from_url is not None or segment_id is not None):
        raise UsageError("choose one: --sample N, or --full --segment ID (or --from-url LINK)")
    result = api.audit(_project(ctx), sync, sample=sample, segment_id=segment_id, from_url=from_url,
                       force=force, repair=repair, examples=examples, target=_target(ctx))
    if as_json:
        _echo_json(result.to_dict(), indent=True)
    else:
        _print(result)
    sys.exit(result.exit_code)


def _print(result: AuditResult) -> None:
    how = "profile reads" if result.method == "sample" else "raw export"
    _echo(f"{result.sync}: {result.method} audit ({how}): {result.checked} user(s) checked, "
          f"{result.found} found at Insider; {result.model_rows} valid model row(s)"
          + (f", {result.invalid_rows} invalid (never sent, not audited)" if result.invalid_rows else ""))
    cost = result.cost
    if result.method == "sample":
        _echo(f"  cost: {cost.get('profile_reads', 0)} profile read(s), {cost.get('quota_units', 0):g} of "
              f"{cost.get('quota_per_minute')} quota units a minute ({cost.get('read_seconds', 0):.2f}s)")
    else:
        _echo(f"  cost: {cost.get('raw_exports', 0)} raw export (the UTC day's one), "
              f"{cost.get('export_profiles', 0)} profile(s), {cost.get('export_bytes', 0)} bytes")
    if result.not_in_model:
        _echo(f"  {result.not_in_model} profile(s) of the segment are not in the model (not drift: "
              "other sources create users too)")
    if result.not_compared:
        _echo(f"  not compared by this method: {', '.join(result.not_compared)}")
    for note in result.notes:
        _echo(f"  note: {note}")
    if not result.drifted:
        _echo(f"{result.sync}: no drift")
        return
    _echo(f"{result.sync}: drifted: {result.drifted_users} user(s)")
    for kind, label in _KINDS.items():
        if result.counts.get(kind):
            _echo(f"  {result.counts[kind]} {'' if kind == 'event' else 'user(s) '}{label}")
            for ex in result.examples.get(kind, []):
                detail = f" {ex['field']}: model {ex['model']}, Insider {ex['insider']}" if ex["field"] else ""
                _echo(f"    {ex['key']}{detail}")
    if result.fields:
        _echo("  per field: " + ", ".join(f"{name} {n}" for name, n in result.fields.items()))
    repair = result.repair
    if repair is None:
        return
    c = repair.counts
    if result.repaired:
        _echo(f"repair: {repair.outcome}: sent {c.get('to_send', 0)} operation(s) in {repair.requests} "
              f"request(s), acknowledged {c.get('acked', 0)}, rejected {c.get('rejected', 0)}, "
              f"failed {c.get('failed', 0)} (run {repair.run_id}, see `reverse-etl history`)")
        if repair.message:
            _echo(f"  {repair.message}")
        return
    _echo(f"repair (dry run): would send {c.get('to_send', 0)} operation(s) "
          f"({c.get('added', 0)} user(s) in full, {c.get('changed', 0)} changed, "
          f"{c.get('removed', 0)} removed); rerun with --repair to send them")
    if repair.message:
        _echo(f"  {repair.message}")
    for kind, payloads in repair.samples.items():
        for payload in payloads:
            _echo(f"  {kind}: {payload}")
