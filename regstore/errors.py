"""Errors that stop a run, each with the exit code the CLI returns for it.

Exit codes (also in ``regstore --help`` and the README):

==  =====================================================================================
0   success; for ``verify``, no errors (hints and warnings allowed)
1   ``verify`` found errors; ``gc`` could not remove some items (listed)
2   usage error (unknown option, missing argument)
3   configuration or store problem: no config, bad YAML, unsupported driver, no store
4   refused: the registry is not in read-only mode (see ``--force``)
5   another regstore run holds the lock
6   mark incomplete (a live manifest or a subtree could not be read): nothing was swept
7   safety valve: the plan would remove an abnormal share of the store; nothing was removed
130 interrupted (Ctrl-C / SIGINT)
==  =====================================================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_NOT_READONLY = 4
EXIT_LOCKED = 5
EXIT_INCOMPLETE = 6
EXIT_SAFETY = 7
EXIT_INTERRUPTED = 130


class RegstoreError(Exception):
    """A problem that stops the run; the message says what, where, and what to do."""

    exit_code = EXIT_CONFIG


class StoreNotFound(RegstoreError):
    exit_code = EXIT_CONFIG


class NotReadOnly(RegstoreError):
    exit_code = EXIT_NOT_READONLY


class Locked(RegstoreError):
    exit_code = EXIT_LOCKED


class SafetyValve(RegstoreError):
    exit_code = EXIT_SAFETY
