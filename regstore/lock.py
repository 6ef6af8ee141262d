"""One regstore at a time on a store: an exclusive lock for runs that change it, a shared one
for runs that only read.

The lock is ``<root>/.regstore/lock``, beside the registry's ``docker`` tree and never inside
it. It is an ``flock``: the kernel drops it when its holder dies, however it dies, so a lock
left by a killed run is never mistaken for a live one. The file also records who holds it; a
record found on a lock nobody holds is a stale lock: it is reported and taken over. The file is
emptied on release, not removed, so two runs can never lock two different files of one name.
Runs that only read do not create the file: where it is absent nobody is sweeping.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from regstore.errors import Locked, RegstoreError

STATE_DIR = ".regstore"


def lock_path(root: Path) -> Path:
    return Path(root) / STATE_DIR / "lock"


def _holder(fd: int) -> dict[str, object] | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    if not raw.strip():
        return None
    try:
        holder = json.loads(raw)
    except ValueError:
        return {"unreadable": raw[:200].decode("utf-8", "replace")}
    return holder if isinstance(holder, dict) else {"unreadable": str(holder)[:200]}


def _describe(holder: dict[str, object] | None) -> str:
    if not holder:
        return "another regstore run"
    if "unreadable" in holder:
        return f"a holder whose record is unreadable ({holder['unreadable']!r})"
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) \
        if isinstance(started, (int, float)) else "an unknown time"
    return (f"'{holder.get('command', 'regstore')}' (pid {holder.get('pid')} on "
            f"{holder.get('host')}, since {when})")


class StoreLock:
    """The lock of one store root. Use as a context manager, or acquire()/release()."""

    def __init__(self, root: Path, command: str, exclusive: bool = True) -> None:
        self.path = lock_path(root)
        self.command = command
        self.exclusive = exclusive
        self.fd: int | None = None
        #: set by acquire() when a stale lock was taken over: who had left it
        self.stale: str | None = None

    def acquire(self) -> "StoreLock":
        if self.exclusive:
            try:
                self.path.parent.mkdir(exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise RegstoreError(f"cannot create the lock {self.path}: {exc.strerror}; "
                                    "regstore needs write access to the storage root") from None
        else:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return self  # nobody ever took the lock here: nothing to wait for
            except OSError as exc:
                raise RegstoreError(f"cannot open the lock {self.path}: {exc.strerror}") from None
        mode = fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise Locked(f"the store is locked by {_describe(holder)} ({self.path}); wait for "
                         "it to finish. The lock is released when its holder exits, "
                         "whatever way it exits") from None
        self.fd = fd
        if self.exclusive:
            previous = _holder(fd)
            if previous:
                self.stale = _describe(previous)
            record = {"pid": os.getpid(), "host": socket.gethostname(),
                      "command": self.command, "started": time.time()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
            os.fsync(fd)
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        if self.exclusive:
            os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
