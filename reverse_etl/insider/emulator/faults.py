"""Fault injection: what the emulator does to a request before it touches any state.

A fault configuration is a plain dict (given as ``Emulator(faults=...)``, through
``emu.set_faults(...)`` or ``POST /_emulator/faults``)::

    {
      "seed": 7,                 # reproducible random draws (default 0)
      "status_429": 0.1,         # probability of 429 {"error":"rejected: too many requests"}
      "status_500": 0.05,        # probability of 500
      "status_503": 0.05,        # probability of 503
      "drop": 0.02,              # probability of closing the connection, no response
      "lost_answer": 0.1,        # probability of applying the request, then closing the
                                 # connection without answering (the answer is lost)
      "latency_ms": 50,          # added before every API response
      "retry_after": 1,          # Retry-After seconds sent with an injected 429
      "reject": ["u13", "x@y.co"],   # users with any of these identifier values fail
                                 # row-level: users.<i>.identifiers.*.rejected
      "script": [500, "drop", 429, "lost", "ok"],  # outcomes for the next API requests,
                                 # in order, before the random ones ("ok" = no fault,
                                 # "lost" = applied, answer lost)
      "endpoints": ["upsert"]    # restrict status/drop/latency faults to these
                                 # endpoint names (default: every API endpoint)
    }

Endpoint names: upsert, attribute_delete, identity_update, identity_delete,
user_delete, anonymize, fps_upload, raw_export.

Faults are decided before authentication and before any state change, so a 5xx,
a 429 or a dropped connection always means "nothing was stored": a client can
retry safely. A lost answer is the exception: the request is applied in full (and
logged with its real status and ``"fault": "lost_answer"``), then the connection
is closed; so is a latency longer than the client's timeout (the request is applied
after the client gave up). Admin endpoints (``/_emulator/...``) are never faulted.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_PROBABILITIES = ("status_429", "status_500", "status_503", "drop", "lost_answer")
_KNOWN = frozenset((*_PROBABILITIES, "seed", "latency_ms", "retry_after", "reject", "script",
                    "endpoints"))
_SCRIPT_STEPS = frozenset({429, 500, 502, 503, 504, 520, "drop", "lost", "ok"})


@dataclass
class Decision:
    """What to do with one request: extra latency, then a status, a drop, or nothing;
    ``lose_answer``: apply it, then drop the connection instead of answering."""

    latency_s: float = 0.0
    status: int | None = None
    drop: bool = False
    lose_answer: bool = False


@dataclass
class FaultConfig:
    """A validated fault configuration (see the module docstring)."""

    seed: int = 0
    status_429: float = 0.0
    status_500: float = 0.0
    status_503: float = 0.0
    drop: float = 0.0
    lost_answer: float = 0.0
    latency_ms: float = 0.0
    retry_after: int = 1
    reject: frozenset[str] = frozenset()
    script: list[int | str] = field(default_factory=list)
    endpoints: frozenset[str] | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> FaultConfig:
        """Validate a raw dict; raises ``ValueError`` naming the bad key."""
        raw = dict(raw or {})
        unknown = set(raw) - _KNOWN
        if unknown:
            raise ValueError(f"unknown fault option(s): {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(_KNOWN))}")
        cfg = cls()
        for key in _PROBABILITIES:
            if key in raw:
                p = raw[key]
                if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
                    raise ValueError(f"fault option {key} must be a probability in [0, 1]")
                setattr(cfg, key, float(p))
        if sum(getattr(cfg, key) for key in _PROBABILITIES) > 1:
            raise ValueError("fault probabilities must add up to at most 1")
        for key in ("seed", "retry_after"):
            if key in raw:
                if isinstance(raw[key], bool) or not isinstance(raw[key], int) or raw[key] < 0:
                    raise ValueError(f"fault option {key} must be a non-negative integer")
                setattr(cfg, key, raw[key])
        if "latency_ms" in raw:
            lat = raw["latency_ms"]
            if isinstance(lat, bool) or not isinstance(lat, int | float) or lat < 0:
                raise ValueError("fault option latency_ms must be a non-negative number")
            cfg.latency_ms = float(lat)
        if "reject" in raw:
            values = raw["reject"]
            if isinstance(values, str) or not all(isinstance(v, str) for v in values):
                raise ValueError("fault option reject must be a list of identifier values")
            cfg.reject = frozenset(values)
        if "script" in raw:
            steps = list(raw["script"])
            for s in steps:
                if s not in _SCRIPT_STEPS or isinstance(s, bool):
                    raise ValueError(f"fault script step {s!r} not one of "
                                     "429, 500, 502, 503, 504, 520, 'drop', 'lost', 'ok'")
            cfg.script = steps
        if "endpoints" in raw and raw["endpoints"] is not None:
            cfg.endpoints = frozenset(raw["endpoints"])
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view (for the admin endpoint)."""
        return {"seed": self.seed, "status_429": self.status_429,
                "status_500": self.status_500, "status_503": self.status_503,
                "drop": self.drop, "lost_answer": self.lost_answer, "latency_ms": self.latency_ms,
                "retry_after": self.retry_after, "reject": sorted(self.reject),
                "script": list(self.script),
                "endpoints": sorted(self.endpoints) if self.endpoints is not None else None}


class FaultInjector:
    """Draws fault decisions from a seeded RNG; swap the config with :meth:`configure`."""

    def __init__(self, raw: Mapping[str, Any] | None = None) -> None:
        self.configure(raw)

    def configure(self, raw: Mapping[str, Any] | None) -> None:
        """Replace the configuration (and reseed)."""
        self.config = FaultConfig.parse(raw)
        self._rng = random.Random(self.config.seed)
        self._active = bool(
            self.config.script or self.config.latency_ms or self.config.status_429
            or self.config.status_500 or self.config.status_503 or self.config.drop
            or self.config.lost_answer)

    def decide(self, endpoint: str) -> Decision | None:
        """The fault for one request to ``endpoint``, or ``None`` for no fault."""
        cfg = self.config
        if not self._active or (cfg.endpoints is not None and endpoint not in cfg.endpoints):
            return None
        d = Decision(latency_s=cfg.latency_ms / 1000.0)
        if cfg.script:
            step = cfg.script.pop(0)
            if step == "drop":
                d.drop = True
            elif step == "lost":
                d.lose_answer = True
            elif isinstance(step, int):
                d.status = step
            return d
        r = self._rng.random()
        for key, status in (("status_429", 429), ("status_500", 500), ("status_503", 503)):
            p = getattr(cfg, key)
            if r < p:
                d.status = status
                return d
            r -= p
        if r < cfg.drop:
            d.drop = True
            return d
        r -= cfg.drop
        if r < cfg.lost_answer:
            d.lose_answer = True
        return d

    def rejected(self, user: Any) -> str | None:
        """The identifier value that forces this user's rejection, if any."""
        reject = self.config.reject
        if not reject or type(user) is not dict:
            return None
        ids = user.get("identifiers")
        if type(ids) is not dict:
            return None
        for k, v in ids.items():
            if k == "custom" and type(v) is dict:
                for cv in v.values():
                    if cv in reject:
                        return str(cv)
            elif type(v) is str and v in reject:
                return v
        return None
