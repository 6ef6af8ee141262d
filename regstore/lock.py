"""One regstore at a time on a store: an exclusive lock for runs that change it, a shared one
for runs that only read. :func:`lock_for` picks the form the store's backend allows.

**Filesystem stores.** The lock is ``<root>/.regstore/lock``, beside the registry's ``docker`` tree and never inside
it. It is an ``flock``: the kernel drops it when its holder dies, however it dies, so a lock
left by a killed run is never mistaken for a live one. The file also records who holds it; a
record found on a lock nobody holds is a stale lock: it is reported and taken over. The file is
emptied on release, not removed, so two runs can never lock two different files of one name.
Runs that only read do not create the file: where it is absent nobody is sweeping.

**S3 stores.** S3 has no flock. The lock is the object ``<rootdirectory>/.regstore/lock``,
beside the registry's ``docker/`` tree, created with a conditional put (``If-None-Match: *``):
of two runs racing for it exactly one gets it (checked on Ceph's radosgw, which honours the
condition; AWS S3 does since 2024). It holds the holder's record (pid, host, command, start)
and is rewritten every :data:`HEARTBEAT` seconds, each time on condition that it is still the
holder's own (``If-Match`` its last ETag). A lock whose object the server has not seen
rewritten for :data:`STALE_AFTER` seconds (the server's clock against the server's clock) was
left by a run that died: it is reported and taken over, again with ``If-Match`` on the stale
ETag, so that of two runs taking it over one wins. A holder that could not renew its lock for
most of that time, or found it taken over, stops removing: the store's ``guard`` raises before
each deletion request. On a server that ignored the conditions the holder reads the lock back
after writing it and gives up unless the record is its own: a best effort, documented as one.
Runs that only read (a dry run, verify) write nothing: they check that no live exclusive lock
is there and go on, so a sweep started after them does not wait for them (verify reports what
such a sweep removed under it as ``vanished``, never as corruption).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Union

from regstore.errors import Locked, RegstoreError
from regstore.store.base import Store, StoreError
from regstore.store.filesystem import FilesystemStore
from regstore.store.s3 import S3Store, StateConflict, StateObject

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


# --- S3 -----------------------------------------------------------------------------------

LOCK_OBJECT = "lock"
#: seconds between two renewals of an S3 lock
HEARTBEAT = 30.0
#: seconds after its last renewal (on the server's clock) an S3 lock counts as left by a dead run
STALE_AFTER = 300.0


class S3StoreLock:
    """The lock of one S3 store (see the module docstring). Use as a context manager."""

    def __init__(self, store: S3Store, command: str, exclusive: bool = True, *,
                 heartbeat: float | None = None, stale_after: float | None = None) -> None:
        self.store = store
        self.command = command
        self.exclusive = exclusive
        self.heartbeat = heartbeat or HEARTBEAT
        self.stale_after = stale_after or STALE_AFTER
        self.path = f"s3://{store.bucket}/{store.state_prefix}{LOCK_OBJECT}"
        #: set by acquire() when a stale lock was taken over (or, for readers, seen)
        self.stale: str | None = None
        #: why the lock was lost while held (taken over, not renewable), or None
        self.lost: str | None = None
        self.etag: str | None = None
        self.token = uuid.uuid4().hex
        self.started = time.time()
        self._renewed = time.monotonic()
        self.last_error = "no answer"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> bytes:
        return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "command": self.command, "started": self.started,
                           "renewed": time.time(), "token": self.token}).encode()

    def _is_stale(self, current: StateObject) -> bool:
        return current.server_now - current.last_modified > self.stale_after

    def _locked(self, current: StateObject) -> Locked:
        return Locked(f"the store is locked by {_describe(_parse(current.body))} ({self.path}, "
                      f"renewed {current.server_now - current.last_modified:.0f} s ago); wait "
                      f"for it to finish. A lock not renewed for {self.stale_after:.0f} s is "
                      "taken as left by a dead run and taken over")

    def acquire(self) -> "S3StoreLock":
        try:
            current = self.store.get_state(LOCK_OBJECT)
            if not self.exclusive:
                if current is not None and not self._is_stale(current):
                    raise self._locked(current)
                if current is not None:
                    self.stale = _describe(_parse(current.body))
                return self
            self._take(current)
        except StoreError as exc:
            raise RegstoreError(f"cannot take the lock {self.path}: {exc.message}; regstore "
                                "needs to read and write objects under the store's "
                                "rootdirectory") from None
        self._thread = threading.Thread(target=self._renew, name="regstore-lock", daemon=True)
        self._thread.start()
        self.store.guard = self.check
        return self

    def _take(self, current: StateObject | None) -> None:
        for _ in range(3):
            if current is None:
                try:
                    self.etag = self.store.put_state(LOCK_OBJECT, self._record(),
                                                     if_none_match=True)
                except StateConflict:
                    current = self.store.get_state(LOCK_OBJECT)
                    continue
            elif not self._is_stale(current):
                raise self._locked(current)
            else:
                try:
                    self.etag = self.store.put_state(LOCK_OBJECT, self._record(),
                                                     if_match=current.etag)
                except StateConflict:
                    current = self.store.get_state(LOCK_OBJECT)
                    continue
                self.stale = _describe(_parse(current.body))
            # Read it back: on a server that ignored the condition, another run may have
            # written over it; the record says whose it is.
            mine = self.store.get_state(LOCK_OBJECT)
            if mine is None or _parse(mine.body).get("token") != self.token:
                if mine is None:
                    raise Locked(f"the lock {self.path} vanished right after it was taken; "
                                 "another run is releasing or taking it: try again")
                raise self._locked(mine)
            self.etag = mine.etag
            self._renewed = time.monotonic()
            return
        raise Locked(f"the lock {self.path} keeps changing hands; try again")

    def _renew(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                self.etag = self.store.put_state(LOCK_OBJECT, self._record(),
                                                 if_match=self.etag)
            except StateConflict:
                self.lost = "another run took it over"
                return
            except StoreError as exc:
                # Not renewed this time; check() stops removals if it goes on too long.
                self.last_error = exc.message
                continue
            self._renewed = time.monotonic()

    def check(self) -> None:
        """Raise StoreError unless the lock is still certainly held (called before each
        deletion request)."""
        if self.lost is None and time.monotonic() - self._renewed > self.stale_after * 0.8:
            self.lost = (f"it could not be renewed for {time.monotonic() - self._renewed:.0f} "
                         f"s ({self.last_error})")
        if self.lost is not None:
            raise StoreError(f".regstore/{LOCK_OBJECT}", f"the store's lock was lost: "
                             f"{self.lost}; stopped before removing more")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.store.guard == self.check:
            self.store.guard = None
        if not self.exclusive or self.etag is None or self.lost is not None:
            return
        try:
            current = self.store.get_state(LOCK_OBJECT)
            if current is not None and _parse(current.body).get("token") == self.token:
                self.store.delete_state(LOCK_OBJECT)
        except StoreError:
            pass  # left behind, it goes stale and the next run takes it over
        self.etag = None

    def __enter__(self) -> "S3StoreLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _parse(body: bytes) -> dict[str, object]:
    try:
        holder = json.loads(body)
    except ValueError:
        return {"unreadable": body[:200].decode("utf-8", "replace")}
    return holder if isinstance(holder, dict) else {"unreadable": str(holder)[:200]}


AnyLock = Union[StoreLock, S3StoreLock]


def lock_for(store: Store, command: str, exclusive: bool = True) -> AnyLock:
    """The lock of ``store`` in the form its backend allows (see the module docstring)."""
    if isinstance(store, S3Store):
        return S3StoreLock(store, command, exclusive)
    assert isinstance(store, FilesystemStore)
    return StoreLock(store.root, command, exclusive)
