"""Decide which syncs to run from dbt's ``target/run_results.json``.

After ``dbt run`` (or ``build``, ``seed``, ``snapshot``, ``retry``) dbt writes one
result per node it executed. A sync whose model dbt rebuilt successfully runs;
every other sync is skipped with a reason a person can act on:

* the model failed (``error: <first line of dbt's message>``),
* dbt skipped it because something upstream failed,
* a dbt data test on it failed or errored (after ``dbt build``),
* it was not part of that dbt invocation at all,
* the invocation rebuilt nothing (``dbt compile``, ``dbt test``, ``--empty``).

A model that was rebuilt but whose tests failed holds data dbt itself flagged,
so pushing it to Insider would spread the problem; hence tests block by default.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from reverse_etl.errors import ConfigError
from reverse_etl.project.dbt.manifest import DbtManifest

BUILDING_COMMANDS = frozenset({"run", "build", "seed", "snapshot", "retry", "clone"})
"""dbt commands whose results mean the relation was (re)built."""

_FAILED_TEST_STATUSES = frozenset({"fail", "error"})
# dbt prefixes a node's error with a header naming the node, which the verdict
# already names; the useful part is the next line.
_HEADER = re.compile(r"^[\w ]*(Error|Exception) in \w+ \S+ \(.*\)$")


@dataclass(frozen=True)
class NodeResult:
    """One entry of ``results`` in run_results.json."""

    unique_id: str
    status: str
    message: str | None = None


class RunResults(Mapping[str, str]):
    """The results of one dbt invocation: a mapping of unique id → dbt status.

    Besides the statuses it keeps each node's message and the invocation's
    metadata (command, ``--empty``, when it ran).
    """

    def __init__(
        self,
        path: Path,
        results: Iterable[NodeResult],
        *,
        command: str | None = None,
        empty: bool = False,
        generated_at: str | None = None,
        invocation_id: str | None = None,
    ) -> None:
        self.path = path
        self._results = {r.unique_id: r for r in results}
        self.command = command
        """``args.which`` of the invocation: ``run``, ``build``, ``compile``, ..."""
        self.empty = empty
        """True when dbt ran with ``--empty`` (every model built with zero rows)."""
        self.generated_at = generated_at
        self.invocation_id = invocation_id

    def __getitem__(self, unique_id: str) -> str:
        return self._results[unique_id].status

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def result(self, unique_id: str) -> NodeResult | None:
        """The full result of ``unique_id``, or None if dbt did not execute it."""
        return self._results.get(unique_id)

    @property
    def rebuilds(self) -> bool:
        """Whether the invocation can have rebuilt relations at all."""
        return (self.command is None or self.command in BUILDING_COMMANDS) and not self.empty


@dataclass(frozen=True)
class Verdict:
    """Whether a sync on a dbt model should run after this dbt invocation, and why."""

    action: Literal["run", "skip"]
    reason: str
    """Empty for ``run``; for ``skip`` a one-line explanation."""
    unique_id: str | None = None
    status: str | None = None
    """The model's dbt status, when dbt executed it."""

    @property
    def should_run(self) -> bool:
        """True when the sync should run."""
        return self.action == "run"

    def __str__(self) -> str:
        return "run" if self.action == "run" else f"skip: {self.reason}"


def load_run_results(path: str | os.PathLike[str]) -> RunResults:
    """Read dbt's ``run_results.json`` at ``path``.

    A missing, unreadable or garbled file raises
    :class:`~reverse_etl.errors.ConfigError` naming the file.
    """
    file = Path(path)
    try:
        data = json.loads(file.read_bytes())
    except FileNotFoundError:
        raise ConfigError(
            f"dbt run results {file} not found: run `dbt run` or `dbt build` first, "
            "or pass the right --dbt-run-results path"
        ) from None
    except (OSError, ValueError) as error:
        # ValueError covers JSONDecodeError and UnicodeDecodeError.
        raise ConfigError(
            f"dbt run results {file} cannot be read: {_first_line(str(error))}"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ConfigError(
            f"dbt run results {file} is not a dbt run_results.json (no 'results' list)"
        )
    results = []
    for entry in data["results"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("unique_id"), str):
            raise ConfigError(f"dbt run results {file} has a result without a unique_id")
        message = entry.get("message")
        results.append(
            NodeResult(
                unique_id=entry["unique_id"],
                status=str(entry.get("status")),
                message=message if isinstance(message, str) else None,
            )
        )
    args = _dict(data.get("args"))
    metadata = _dict(data.get("metadata"))
    return RunResults(
        file,
        results,
        command=_command(args),
        empty=bool(args.get("empty")),
        generated_at=metadata.get("generated_at"),
        invocation_id=metadata.get("invocation_id"),
    )


def classify(
    manifest: DbtManifest,
    run_results: RunResults | Mapping[str, str],
    model_names: Sequence[str],
    *,
    block_on_failed_tests: bool = True,
) -> dict[str, Verdict]:
    """A :class:`Verdict` for each of ``model_names`` (as written in syncs.yml).

    Models are resolved through ``manifest`` (an unknown model raises
    :class:`~reverse_etl.errors.ConfigError`). ``run_results`` may be a plain
    ``{unique_id: status}`` mapping; messages then go unreported. With
    ``block_on_failed_tests`` a model whose dbt data tests failed or errored in
    the same invocation is skipped.
    """
    verdicts: dict[str, Verdict] = {}
    results = run_results if isinstance(run_results, RunResults) else None
    for name in model_names:
        uid = manifest.unique_id(name)
        if results is not None and not results.rebuilds:
            verdicts[name] = Verdict("skip", _rebuilt_nothing(results), uid)
            continue
        status = run_results.get(uid)
        if status is None:
            verdicts[name] = Verdict("skip", "not in this dbt run", uid)
        elif status == "success":
            failed = _failed_test(manifest, run_results, uid) if block_on_failed_tests else None
            if failed is None:
                verdicts[name] = Verdict("run", "", uid, status)
            else:
                verdicts[name] = Verdict("skip", failed, uid, status)
        else:
            verdicts[name] = Verdict("skip", _skip_reason(manifest, run_results, uid), uid, status)
    return verdicts


# ----------------------------------------------------------------------- helpers
def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _command(args: Mapping[str, Any]) -> str | None:
    which = args.get("which")
    return str(which) if which else None


def _rebuilt_nothing(results: RunResults) -> str:
    if results.empty:
        return "the dbt run used --empty (models were built without rows)"
    return f"the last dbt command was `dbt {results.command}`, which rebuilds no models"


def _first_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if len(lines) > 1 and _HEADER.match(lines[0]):
        return lines[1]
    return lines[0] if lines else ""


def _message(results: Mapping[str, str], uid: str) -> str:
    if isinstance(results, RunResults):
        result = results.result(uid)
        return _first_line(result.message if result else None)
    return ""


def _skip_reason(manifest: DbtManifest, results: Mapping[str, str], uid: str) -> str:
    status = results[uid]
    if status == "error":
        message = _message(results, uid)
        return f"error: {message}" if message else "error in dbt"
    if status == "skipped":
        culprit = _upstream_failure(manifest, results, uid)
        if culprit:
            return f"skipped by dbt because {culprit} failed"
        return "skipped by dbt (an upstream node failed)"
    if status == "partial success":
        return "partial success: some of its microbatch batches failed in dbt"
    return f"dbt status {status!r}"


def _failed_test(manifest: DbtManifest, results: Mapping[str, str], uid: str) -> str | None:
    for test in manifest.tests_on(uid):
        status = results.get(test)
        if status in _FAILED_TEST_STATUSES:
            message = _message(results, test)
            detail = f": {message}" if message else ""
            return f"dbt test {_short(test)} {'failed' if status == 'fail' else 'errored'}{detail}"
    return None


def _upstream_failure(manifest: DbtManifest, results: Mapping[str, str], uid: str) -> str | None:
    """The nearest ancestor (or test on one) that failed, breadth first."""
    seen = {uid}
    frontier = list(manifest.parents(uid))
    while frontier:
        upcoming: list[str] = []
        for parent in frontier:
            if parent in seen:
                continue
            seen.add(parent)
            if results.get(parent) in _FAILED_TEST_STATUSES:
                return _short(parent)
            for test in manifest.tests_on(parent):
                if results.get(test) in _FAILED_TEST_STATUSES:
                    return f"dbt test {_short(test)}"
            upcoming.extend(manifest.parents(parent))
        frontier = upcoming
    return None


def _short(uid: str) -> str:
    """``model.pkg.customers`` → ``customers``; generic tests drop their hash suffix."""
    parts = uid.split(".")
    if parts[0] == "test" and len(parts) >= 4:
        return parts[2]
    return parts[-1] if len(parts) < 3 else ".".join(parts[2:])
