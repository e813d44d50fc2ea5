"""Choose syncs with ``--select`` / ``--exclude``, the way dbt chooses models.

Selector grammar (a subset of dbt's node selection syntax)::

    customer_profiles        a sync name; shell-style globs work: "customer_*"
    tag:daily                syncs carrying the tag (globs work too)
    model:customers          syncs reading the model (globs work too)
    a b                      several selectors: union (as separate --select values)
    tag:daily,model:orders   comma: intersection

``select_syncs(syncs, select, exclude)`` keeps the syncs any ``select`` value
matches (all syncs when ``select`` is empty), then removes those any
``exclude`` value matches, keeping the configured order.

Unlike dbt, a selector that matches no sync is an error rather than a warning:
a mistyped ``--exclude`` would otherwise silently sync what the user meant to
leave out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from fnmatch import fnmatchcase
from typing import Protocol, TypeVar

from reverse_etl.errors import UsageError

METHODS = ("name", "tag", "model")
"""Selector methods; ``name`` is the default when a selector has no ``method:``."""


class Selectable(Protocol):
    """What selection needs from a sync (``SyncConfig`` satisfies it)."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def tags(self) -> Sequence[str]: ...


S = TypeVar("S", bound=Selectable)


def select_syncs(
    syncs: Sequence[S], select: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[S]:
    """The syncs chosen by ``select`` minus those matched by ``exclude``, in config order.

    Each value of ``select`` and ``exclude`` may hold several selectors
    separated by spaces (a union) and each of those several selectors joined
    by commas (an intersection). Raises :class:`~reverse_etl.errors.UsageError`
    for an unknown method (``foo:bar``), an empty selector, or a selector that
    matches no sync.
    """
    if isinstance(select, str) or isinstance(exclude, str):
        # A bare string would be iterated character by character.
        raise TypeError("select and exclude take sequences of selector strings, not a str")
    chosen = _union(syncs, select) if _terms(select) else set(range(len(syncs)))
    removed = _union(syncs, exclude)
    return [sync for i, sync in enumerate(syncs) if i in chosen and i not in removed]


def parse_selectors(values: Iterable[str]) -> list[list[tuple[str, str]]]:
    """Split ``--select`` values into a union of intersections of ``(method, pattern)``.

    ``["tag:daily,model:x  nightly"]`` → ``[[("tag", "daily"), ("model", "x")],
    [("name", "nightly")]]``.
    """
    return [[_atom(part, term) for part in term.split(",")] for term in _terms(values)]


# ---------------------------------------------------------------------- internals
def _terms(values: Iterable[str]) -> list[str]:
    return [term for value in values for term in value.split() if term]


def _atom(text: str, term: str) -> tuple[str, str]:
    method, sep, pattern = text.partition(":")
    if not sep:
        method, pattern = "name", text
    method = method.strip()
    pattern = pattern.strip()
    if method not in METHODS:
        raise UsageError(
            f"unknown selector method {method!r} in {term!r}; use a sync name, "
            "tag:<tag> or model:<model>"
        )
    if not pattern:
        raise UsageError(f"empty selector in {term!r}; write e.g. tag:daily or a sync name")
    return method, pattern


def _matcher(method: str, pattern: str) -> Callable[[Selectable], bool]:
    if method == "tag":
        return lambda sync: any(fnmatchcase(tag, pattern) for tag in sync.tags)
    if method == "model":
        return lambda sync: fnmatchcase(sync.model, pattern)
    return lambda sync: fnmatchcase(sync.name, pattern)


def _union(syncs: Sequence[Selectable], values: Sequence[str]) -> set[int]:
    selected: set[int] = set()
    for intersection in parse_selectors(values):
        matched: set[int] | None = None
        for method, pattern in intersection:
            hits = {i for i, sync in enumerate(syncs) if _matcher(method, pattern)(sync)}
            if not hits:
                raise UsageError(_nothing_matches(syncs, method, pattern))
            matched = hits if matched is None else matched & hits
        if not matched:
            joined = ",".join(f"{m}:{p}" if m != "name" else p for m, p in intersection)
            raise UsageError(
                f"selector {joined!r} matches no sync: no sync satisfies all of its "
                "comma-separated parts (known syncs: "
                f"{_known(syncs)})"
            )
        selected |= matched
    return selected


def _nothing_matches(syncs: Sequence[Selectable], method: str, pattern: str) -> str:
    selector = pattern if method == "name" else f"{method}:{pattern}"
    known = f"known syncs: {_known(syncs)}"
    if method == "tag":
        known += f"; known tags: {', '.join(sorted({t for s in syncs for t in s.tags})) or 'none'}"
    elif method == "model":
        known += f"; known models: {', '.join(sorted({s.model for s in syncs})) or 'none'}"
    return f"selector {selector!r} matches no sync ({known})"


def _known(syncs: Sequence[Selectable]) -> str:
    return ", ".join(sync.name for sync in syncs) or "none"
