"""Quarantine: move entries out of a store into a directory, with a record, and put them back.

``verify --quarantine DIR`` moves corrupt blobs here, one at a time, as it decides to. The
directory has the layout of a quarantined ``gc`` sweep (:mod:`regstore.holding`), so one
``regstore restore DIR`` puts back what either command moved, and ``purge-quarantine`` ages
both out::

    DIR/<run>/journal.jsonl   one JSON object a line: n, kind, key, digest, repository, size,
                              reason, time (the fields of regstore.holding.Held), and command
    DIR/<run>/items/<n>       what was at ``key`` (relative to docker/registry/v2)

``<run>`` is ``YYYYmmddTHHMMSS-<8 hex>`` (UTC start of the run), one per :class:`Quarantine`
that moved something. Moving is a rename: nothing is copied, an entry keeps its inode, bytes,
mode and times, so a restore puts it back byte-identical. That needs DIR on the store's
filesystem, which :meth:`Quarantine.open` checks before anything moves; DIR must also lie
outside the ``docker`` tree, where the registry would see what it holds.

A journal line is written and fsynced *before* its rename: a crash in between leaves a line
whose item is still in the store (restore skips it), never an item nobody knows the origin of.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import time
import uuid
from pathlib import Path

from regstore.errors import RegstoreError
from regstore.holding import (JOURNAL, Held, journal_then_rename, read_journal, restore_runs,
                              runs_in)
from regstore.store.base import StoreError
from regstore.store.filesystem import FilesystemStore, fsync_dir

ITEMS = "items"


class QuarantineError(RegstoreError):
    """The quarantine directory cannot receive entries of this store."""


class Quarantine:
    """A quarantine directory. Use :meth:`open`, which checks it, before :meth:`put`."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.run_dir: Path | None = None  # created by the first put
        self.moved: list[Held] = []

    @classmethod
    def open(cls, directory: Path, store: FilesystemStore) -> "Quarantine":
        """Create ``directory`` if needed and check that entries of ``store`` can be renamed
        into it. Raises QuarantineError."""
        quarantine = cls(directory)
        quarantine.check(store)
        return quarantine

    def check(self, store: FilesystemStore) -> None:
        """Raise QuarantineError unless DIR is outside the store's ``docker`` tree and on the
        store's filesystem."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise QuarantineError(f"cannot create the quarantine directory {self.directory}: "
                                  f"{exc.strerror or exc}") from None
        real = os.path.realpath(self.directory)
        docker = os.path.realpath(store.root / "docker")
        if real == docker or real.startswith(docker + os.sep):
            raise QuarantineError(
                f"the quarantine directory {self.directory} is inside the store's docker tree, "
                "where the registry would see what it holds; choose a directory beside it, "
                f"e.g. {store.root / '.regstore' / 'quarantine'}")
        if os.stat(real).st_dev != os.stat(store.v2).st_dev:
            raise QuarantineError(self._other_filesystem(store))

    def _other_filesystem(self, store: FilesystemStore) -> str:
        return (f"the quarantine directory {self.directory} is on another filesystem than "
                f"the store {store.location}; entries are moved by renaming, never copied: "
                f"choose a directory on the store's filesystem, e.g. "
                f"{store.root / '.regstore' / 'quarantine'}")

    def put(self, store: FilesystemStore, key: str, *, kind: str, digest: str, reason: str,
            repository: str | None = None, size: int = 0, command: str = "regstore") -> Held:
        """Move the file or directory ``key`` of ``store`` into quarantine and record what it
        was and why. Refuses on a read-only store (ReadOnlyStore), for a key outside the
        store's tree or a symlink (StoreError), across filesystems (QuarantineError); raises
        StoreError when nothing is at ``key``."""
        source = store.removable_path(key)
        if source is None:
            raise StoreError(key, "is not there; nothing to move into quarantine")
        items = self._items_dir()
        held = Held(len(self.moved), kind, key, digest, repository, size, reason, time.time())
        assert self.run_dir is not None
        try:
            with open(self.run_dir / JOURNAL, "a", encoding="utf-8") as journal:
                journal_then_rename(journal, {**dataclasses.asdict(held), "command": command},
                                    source, items / str(held.n))
        except OSError as exc:
            # The journal line stays; its item is still in the store, so restore skips it.
            if exc.errno == errno.EXDEV:
                raise QuarantineError(self._other_filesystem(store)) from None
            raise StoreError(key, f"cannot move into quarantine: {exc.strerror or exc}") from None
        fsync_dir(items)
        fsync_dir(source.parent)
        self.moved.append(held)
        return held

    def item_path(self, held: Held) -> Path:
        """Where the item ``held`` (moved by this Quarantine) now is."""
        assert self.run_dir is not None
        return self.run_dir / ITEMS / str(held.n)

    def _items_dir(self) -> Path:
        if self.run_dir is None:
            name = time.strftime("%Y%m%dT%H%M%S-", time.gmtime()) + uuid.uuid4().hex[:8]
            self.run_dir = self.directory / name
            (self.run_dir / ITEMS).mkdir(parents=True)
            fsync_dir(self.directory)
        return self.run_dir / ITEMS

    def entries(self) -> list[tuple[Path, Held]]:
        """Every entry of every run in DIR whose item is here, as (item path, record)."""
        found = []
        for run in runs_in(self.directory):
            for held in read_journal(run):
                item = run / ITEMS / str(held.n)
                if os.path.lexists(item):
                    found.append((item, held))
        return found

    def restore(self, store: FilesystemStore) -> list[Held]:
        """Put every entry of every run in DIR back where it came from, by renaming it (so
        byte-identical), then remove the runs; what ``regstore restore DIR`` does. An entry
        whose key holds something again (the image was re-pushed) is discarded instead."""
        return restore_runs(store, runs_in(self.directory))
