"""The exception tree of reverse_etl.

Every error the library raises on purpose derives from :class:`ReverseEtlError`
and carries a one-line, user-facing message that names where the problem is and
how to fix it. The CLI turns each into that line and an exit code; it never shows
a traceback for these.

::

    ReverseEtlError                  exit_code
    ├── ConfigError                  1  bad syncs.yml, model file, env var, selection
    │   └── UsageError               1  bad command-line use (unknown sync, ...)
    ├── SourceError                  2  the warehouse failed: broken SQL, unreachable, auth
    ├── StateError                   4  snapshot/journal/lock problems
    │   └── LockedError              4  another run of the same sync holds the lock
    └── DeliveryError                4  Insider refused the whole run
        └── AuthenticationError      4  401/403 from Insider (Terminal: never retried)

Retry markers, in the spirit of dlt: :class:`Transient` (worth another attempt:
429, 5xx, timeouts, dropped connections) and :class:`Terminal` (retrying cannot
fix it) are mixins on the concrete errors; every HTTP path retries exactly the
``Transient`` ones.

Exit code 3 (partial delivery: some rows rejected) is not an exception; it comes
from a run result whose rejected count is non-zero.
"""

from __future__ import annotations


class ReverseEtlError(Exception):
    """Base of every deliberate error; ``str(error)`` is a one-line message."""

    exit_code = 4


class ConfigError(ReverseEtlError):
    """The project configuration (syncs.yml, models, environment) is invalid."""

    exit_code = 1


class UsageError(ConfigError):
    """The command line or API call asked for something that does not exist."""


class SourceError(ReverseEtlError):
    """The warehouse could not run a model or could not be reached."""

    exit_code = 2


class StateError(ReverseEtlError):
    """The sync's state directory (snapshot, journal, lock, ledger) is unusable."""

    exit_code = 4


class LockedError(StateError):
    """Another run of the same sync is in progress."""


class DeliveryError(ReverseEtlError):
    """Insider refused the run as a whole (not row by row)."""

    exit_code = 4


# Retry markers: mixins, so a concrete error says whether another attempt can help.
class Transient:
    """Marks an error worth retrying (429, 5xx, timeouts, dropped connections)."""


class Terminal:
    """Marks an error that retrying cannot fix (credentials refused, a malformed request)."""


class AuthenticationError(DeliveryError, Terminal):
    """Insider answered 401 or 403: the partner name or API key is wrong."""


class TransientError(Transient, Exception):
    """One attempt failed in a way worth retrying; the retry loop turns the last one into a DeliveryError."""
