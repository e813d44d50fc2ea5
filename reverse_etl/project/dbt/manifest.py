"""Resolve dbt models to warehouse relations through ``target/manifest.json``.

``manifest.json`` of a large dbt project runs to hundreds of megabytes, most of
it macros, docs and graph maps that reverse_etl never needs. So
:func:`load_manifest` only checks that the file exists; the first question asked
of the :class:`DbtManifest` parses the top-level keys one by one and stops after
``nodes`` (dbt writes ``metadata`` and ``nodes`` first), then keeps a compact
record per model, seed, snapshot and test and drops the parsed JSON.
``disabled`` is only read to explain a failed look-up.

A model can be named as ``customers``, ``my_package.customers``, its unique id
``model.my_package.customers``, or for versioned models ``customers.v2``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from reverse_etl.errors import ConfigError
from reverse_etl.project.dbt.relation import DbtRelation, Quoting

RELATION_TYPES = frozenset({"model", "seed", "snapshot"})
"""Resource types that materialise as something a sync can select from."""

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class _Index:
    """What reverse_etl keeps of a parsed manifest."""

    project_name: str | None
    adapter_type: str | None
    relations: dict[str, DbtRelation]  # unique_id → relation
    keys: dict[str, tuple[str, ...]]  # every accepted spelling → unique ids
    parents: dict[str, tuple[str, ...]]  # unique_id → upstream unique ids
    tests: dict[str, tuple[str, ...]]  # model unique_id → ids of the tests on it


class DbtManifest:
    """A dbt project's ``manifest.json``, parsed on first use.

    Create it with :func:`load_manifest`. Look-ups raise
    :class:`~reverse_etl.errors.ConfigError` with a one-line message.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._index: _Index | None = None

    # ------------------------------------------------------------------ look-ups
    def relation(self, model: str) -> DbtRelation:
        """The relation of ``model`` (a name, ``package.name``, ``name.vN`` or unique id).

        An ambiguous name resolves as dbt's ``ref()`` would from the root
        project: a node of the root project wins; otherwise the error lists the
        ``package.model`` spellings to choose from.
        """
        index = self._load()
        return index.relations[self._resolve(index, model)]

    def unique_id(self, model: str) -> str:
        """dbt's unique id for ``model`` (any spelling :meth:`relation` accepts)."""
        return self.relation(model).unique_id

    def find(self, model: str) -> DbtRelation | None:
        """Like :meth:`relation` but ``None`` when the manifest has no such model."""
        index = self._load()
        if not index.keys.get(model) and model not in index.relations:
            return None
        return self.relation(model)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.find(model) is not None

    def models_by_tag(self, tag: str) -> list[DbtRelation]:
        """Models, seeds and snapshots carrying dbt tag ``tag``, sorted by unique id."""
        index = self._load()
        return [r for uid, r in sorted(index.relations.items()) if tag in r.tags]

    def relations(self) -> Iterator[DbtRelation]:
        """Every model, seed and snapshot of the manifest."""
        return iter(self._load().relations.values())

    @property
    def adapter_type(self) -> str | None:
        """The adapter that wrote the manifest (``duckdb``, ``snowflake``, ...)."""
        return self._load().adapter_type

    @property
    def project_name(self) -> str | None:
        """The root dbt project's name."""
        return self._load().project_name

    def parents(self, unique_id: str) -> tuple[str, ...]:
        """Unique ids ``unique_id`` depends on directly (models, seeds, snapshots, sources)."""
        return self._load().parents.get(unique_id, ())

    def tests_on(self, unique_id: str) -> tuple[str, ...]:
        """Unique ids of the dbt data tests attached to (or depending on) ``unique_id``."""
        return self._load().tests.get(unique_id, ())

    # ----------------------------------------------------------------- internals
    def _resolve(self, index: _Index, model: str) -> str:
        if model in index.relations:
            return model
        candidates = index.keys.get(model, ())
        if len(candidates) > 1:
            in_root = [
                u for u in candidates if index.relations[u].package_name == index.project_name
            ]
            if len(in_root) == 1:
                return in_root[0]
            spelled = ", ".join(sorted(index.relations[u].display_name for u in candidates))
            raise ConfigError(
                f"dbt model {model!r} is ambiguous in {self.path}: write one of {spelled}"
            )
        if candidates:
            return candidates[0]
        raise ConfigError(self._not_found_message(index, model))

    def _not_found_message(self, index: _Index, model: str) -> str:
        disabled = _disabled_names(self.path)
        if model in disabled:
            return (
                f"dbt model {model!r} is disabled in the dbt project ({self.path}); "
                "enable it or point the sync at another model"
            )
        names = sorted({r.name for r in index.relations.values() if r.resource_type == "model"})
        close = difflib.get_close_matches(model, sorted(index.keys), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else f"it has {len(names)} models"
        return (
            f"dbt model {model!r} not found in {self.path} ({hint}); "
            "check the name, or re-run `dbt compile` if the model is new"
        )

    def _load(self) -> _Index:
        if self._index is None:
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                raise ConfigError(_missing_message(self.path)) from None
            self._index = _parse_cached(str(self.path), stat.st_mtime_ns, stat.st_size)
        return self._index


def load_manifest(
    project_dir: str | os.PathLike[str], target_path: str | os.PathLike[str] = "target"
) -> DbtManifest:
    """The manifest of the dbt project in ``project_dir``.

    ``target_path`` is dbt's target directory, relative to ``project_dir``
    unless absolute. Only the file's existence is checked here; it is parsed on
    first use. A missing file raises :class:`~reverse_etl.errors.ConfigError`.
    """
    project = Path(project_dir)
    if not project.is_dir():
        raise ConfigError(f"dbt project directory {project} does not exist; check dbt.project_dir")
    path = project / target_path / "manifest.json"
    if not path.is_file():
        raise ConfigError(_missing_message(path))
    return DbtManifest(path)


def _missing_message(path: Path) -> str:
    return f"dbt manifest {path} not found: run `dbt compile` or `dbt run` first"


# ------------------------------------------------------------------------ parsing
def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(_missing_message(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read dbt manifest {path}: {error}") from None


def _top_level(path: Path, wanted: Iterable[str]) -> dict[str, Any]:
    """Decode only the ``wanted`` top-level values of the JSON object in ``path``.

    Values are decoded in file order and decoding stops once every wanted key
    was seen, so keys dbt writes after ``nodes`` (macros, docs, maps) cost
    nothing when only ``nodes`` is asked for.
    """
    text = _read_text(path)
    remaining = set(wanted)
    found: dict[str, Any] = {}
    try:
        pos = _WHITESPACE.match(text, 0).end()  # type: ignore[union-attr]
        if text[pos : pos + 1] != "{":
            raise ValueError("not a JSON object")
        pos += 1
        while remaining:
            pos = _WHITESPACE.match(text, pos).end()  # type: ignore[union-attr]
            if text[pos : pos + 1] == "}":
                break
            key, pos = _DECODER.raw_decode(text, pos)
            pos = _WHITESPACE.match(text, pos).end()  # type: ignore[union-attr]
            if text[pos : pos + 1] != ":":
                raise ValueError(f"expected ':' at character {pos}")
            pos = _WHITESPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
            value, pos = _DECODER.raw_decode(text, pos)
            if key in remaining:
                found[key] = value
                remaining.discard(key)
            pos = _WHITESPACE.match(text, pos).end()  # type: ignore[union-attr]
            if text[pos : pos + 1] == ",":
                pos += 1
    except ValueError as error:
        raise ConfigError(
            f"dbt manifest {path} is not valid JSON ({error}); re-run `dbt compile`"
        ) from None
    return found


@lru_cache(maxsize=4)
def _parse_cached(path: str, mtime_ns: int, size: int) -> _Index:
    # mtime and size are part of the cache key so a rebuilt manifest is re-read.
    del mtime_ns, size
    return _parse(Path(path))


def _parse(path: Path) -> _Index:
    top = _top_level(path, ("metadata", "nodes"))
    metadata = top.get("metadata") or {}
    nodes = top.get("nodes")
    if not isinstance(nodes, dict):
        raise ConfigError(f"dbt manifest {path} has no 'nodes'; re-run `dbt compile`")
    adapter_type = metadata.get("adapter_type")
    default_quoting = metadata.get("quoting") or {}
    relations: dict[str, DbtRelation] = {}
    parents: dict[str, tuple[str, ...]] = {}
    tests: dict[str, list[str]] = {}
    declared_latest: dict[tuple[str, str], str] = {}
    for uid, node in nodes.items():
        kind = node.get("resource_type")
        depends = tuple((node.get("depends_on") or {}).get("nodes") or ())
        if kind in RELATION_TYPES:
            parents[uid] = depends
            relation = _relation(uid, node, adapter_type, default_quoting)
            if relation is not None:
                relations[uid] = relation
                if node.get("latest_version") is not None:
                    declared_latest[_family(relation)] = str(node["latest_version"])
        elif kind == "test":
            # Generic tests name the model they are defined on; singular tests
            # only list what they select from.
            attached = node.get("attached_node")
            for target in (attached,) if attached else depends:
                tests.setdefault(target, []).append(uid)
    return _Index(
        project_name=metadata.get("project_name"),
        adapter_type=adapter_type,
        relations=relations,
        keys=_keys(relations, {**_latest_versions(relations.values()), **declared_latest}),
        parents=parents,
        tests={k: tuple(v) for k, v in tests.items()},
    )


def _relation(
    uid: str, node: dict[str, Any], adapter_type: str | None, default_quoting: dict[str, Any]
) -> DbtRelation | None:
    config = node.get("config") or {}
    if config.get("materialized") == "ephemeral":
        # An ephemeral model is a CTE inlined into its children: nothing to select from.
        return None
    quoting = {**default_quoting, **(config.get("quoting") or {})}
    version = node.get("version")
    return DbtRelation(
        unique_id=uid,
        name=node.get("name") or uid.rsplit(".", 1)[-1],
        package_name=node.get("package_name") or "",
        resource_type=node.get("resource_type") or "model",
        database=node.get("database"),
        schema=node.get("schema") or "",
        identifier=node.get("alias") or node.get("identifier") or node.get("name") or "",
        relation_name=node.get("relation_name"),
        materialized=config.get("materialized"),
        tags=tuple(node.get("tags") or config.get("tags") or ()),
        version=None if version is None else str(version),
        adapter_type=adapter_type,
        quoting=Quoting(
            database=quoting.get("database") is not False,
            schema=quoting.get("schema") is not False,
            identifier=quoting.get("identifier") is not False,
        ),
    )


def _keys(
    relations: dict[str, DbtRelation], latest: dict[tuple[str, str], str]
) -> dict[str, tuple[str, ...]]:
    keys: dict[str, list[str]] = {}
    for uid, relation in relations.items():
        spellings = [uid]
        if relation.version is None or latest.get(_family(relation)) == relation.version:
            # An unversioned ref() of a versioned model means its latest version.
            spellings += [relation.name, f"{relation.package_name}.{relation.name}"]
        if relation.version is not None:
            suffix = f"{relation.name}.v{relation.version}"
            spellings += [suffix, f"{relation.package_name}.{suffix}"]
        for key in spellings:
            keys.setdefault(key, []).append(uid)
    return {k: tuple(dict.fromkeys(v)) for k, v in keys.items()}


def _family(relation: DbtRelation) -> tuple[str, str]:
    return (relation.package_name, relation.name)


def _latest_versions(relations: Iterable[DbtRelation]) -> dict[tuple[str, str], str]:
    """Highest version per versioned model: dbt's default when ``latest_version`` is unset."""
    latest: dict[tuple[str, str], str] = {}
    for relation in relations:
        if relation.version is None:
            continue
        current = latest.get(_family(relation))
        if current is None or _version_key(relation.version) > _version_key(current):
            latest[_family(relation)] = relation.version
    return latest


def _version_key(version: str) -> tuple[int, float | str]:
    try:
        return (1, float(version))
    except ValueError:
        return (0, version)


def _disabled_names(path: Path) -> set[str]:
    """Names of disabled nodes; read only to explain a failed look-up."""
    try:
        disabled = _top_level(path, ("disabled",)).get("disabled") or {}
    except ConfigError:
        return set()
    names: set[str] = set()
    for uid, entries in disabled.items():
        names.add(uid)
        for entry in entries or ():
            if isinstance(entry, dict) and entry.get("name"):
                names.add(entry["name"])
                names.add(f"{entry.get('package_name')}.{entry['name']}")
    return names
