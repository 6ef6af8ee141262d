"""Where a sweep puts what it removes until it is sure, and where quarantine keeps it.

A real sweep does not delete an item at once: it renames it into a holding area,
``<root>/.regstore/holding/<run>/``, after writing (and fsyncing) a journal line that says what
it was and where it goes. Only when the sweep is over, and a last look at the repositories found
nothing new that needs a held item, is the holding area deleted (or, with ``--quarantine DIR``,
moved into DIR whole). So:

* a run killed at any instant leaves every held item recorded; the next run puts them all back
  before it plans (:func:`recover`), and then does the job again from what is there;
* an item that a push started to use during the sweep is put back (:meth:`Holding.give_back`);
* ``regstore restore DIR`` puts a quarantined sweep back exactly.

Renames need the holding area and the store on one filesystem. Where they are not (the
``docker`` tree symlinked to another disk), the holding area says so and removal is direct.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, TextIO

from regstore.errors import RegstoreError
from regstore.lock import STATE_DIR
from regstore.store.base import StoreError
from regstore.store.filesystem import FilesystemStore, fsync_dir

JOURNAL = "journal.jsonl"


@dataclass(frozen=True)
class Held:
    """One journal line: what was at ``key`` (relative to docker/registry/v2) is now ``n``."""

    n: int
    kind: str
    key: str
    digest: str
    repository: str | None
    size: int
    reason: str
    time: float

    @staticmethod
    def parse(line: str) -> "Held":
        d = json.loads(line)
        return Held(int(d["n"]), str(d["kind"]), str(d["key"]), str(d["digest"]),
                    d.get("repository"), int(d.get("size", 0)), str(d.get("reason", "")),
                    float(d.get("time", 0)))


def holding_root(root: Path) -> Path:
    return Path(root) / STATE_DIR / "holding"


class Holding:
    """The holding area of one sweep. ``remove(item)`` holds it; ``finish`` ends the run."""

    def __init__(self, store: FilesystemStore, run_id: str | None = None) -> None:
        self.store = store
        run_id = run_id or time.strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:8]
        self.dir = holding_root(store.root) / run_id
        self.items_dir = self.dir / "items"
        self.items_dir.mkdir(parents=True)
        self.journal = open(self.dir / JOURNAL, "a", encoding="utf-8")
        self.held: dict[int, Held] = {}
        self.direct = False  # set when renames cannot work: removal is then immediate

    def remove(self, kind: str, key: str, digest: str, repository: str | None, size: int,
               reason: str) -> None:
        """Take ``key`` out of the store: into the holding area, or deleted where renames
        across filesystems are impossible. Raises StoreError on failure."""
        if self.direct:
            self.store.remove_tree(key)
            return
        path = self.store.removable_path(key)
        if path is None:
            return  # already gone: the goal holds
        entry = Held(len(self.held), kind, key, digest, repository, size, reason, time.time())
        try:
            journal_then_rename(self.journal, entry.__dict__, path, self.items_dir / str(entry.n))
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                self.direct = True
                self.store.remove_tree(key)
                return
            raise StoreError(key, f"cannot move into the holding area: {exc.strerror}") from None
        self.held[entry.n] = entry

    def give_back(self, digests: set[str]) -> list[Held]:
        """Put back every held item whose digest is in ``digests``; return them."""
        back = [h for h in self.held.values() if h.digest in digests]
        for h in back:
            _put_back(self.store, self.items_dir / str(h.n), h)
            del self.held[h.n]
        return back

    def finish(self, quarantine: Path | None) -> Path | None:
        """End the sweep: delete what is held, or move it whole into ``quarantine``.
        Returns where the quarantined sweep now is."""
        self.journal.close()
        if quarantine is not None:
            quarantine.mkdir(parents=True, exist_ok=True)
            dest = quarantine / self.dir.name
            try:
                os.rename(self.dir, dest)
            except OSError as exc:
                raise RegstoreError(
                    f"cannot move the swept items into {quarantine}: {exc.strerror}; the "
                    f"quarantine must be on the filesystem of the store. They are kept in "
                    f"{self.dir}: move them by hand or run `regstore restore {self.dir.parent}`"
                ) from None
            return dest
        # The journal goes first, durably: from then on the sweep is final, and a crash in the
        # middle of deleting the rest leaves items that are only ever deleted (by recover),
        # never some of them put back without the others (a tag history entry without its
        # manifest, which no later plan would name).
        os.unlink(self.dir / JOURNAL)
        fsync_dir(self.dir)
        shutil.rmtree(self.dir)
        _remove_if_empty(self.dir.parent)
        return None


def journal_then_rename(journal: TextIO, record: dict[str, object], source: Path,
                        dest: Path) -> None:
    """Append ``record`` to ``journal`` durably, then rename ``source`` to ``dest``.

    The line is on disk before the rename: a crash in between leaves a line whose item is
    still in place, which restoring skips; never an item nobody knows the origin of. Raises
    OSError from the rename, for the caller to name.
    """
    journal.write(json.dumps(record, sort_keys=True) + "\n")
    journal.flush()
    os.fsync(journal.fileno())
    os.rename(source, dest)


def _put_back(store: FilesystemStore, held_path: Path, h: Held) -> bool:
    """Rename a held item back to its key unless something new took its place (then the held
    copy goes: the registry wrote the same content again). Returns whether it was put back."""
    if not os.path.lexists(held_path):
        return False
    target = store.path(h.key)
    if os.path.lexists(target):
        _discard(held_path)
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(held_path, target)
    return True


def _discard(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # not empty, or gone: either way nothing to tidy


def read_journal(run_dir: Path) -> Iterator[Held]:
    """The journal lines of one holding or quarantine run; a torn last line is skipped (it
    was being written when the run died, so its rename never happened)."""
    try:
        lines = (run_dir / JOURNAL).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        try:
            yield Held.parse(line)
        except (ValueError, KeyError, TypeError):
            continue


def restore_runs(store: FilesystemStore, run_dirs: Iterable[Path]) -> list[Held]:
    """Put back every item of the given holding or quarantine runs, then remove the runs.
    An item whose key is taken again is discarded (the store has its content anew)."""
    restored = []
    for run_dir in sorted(run_dirs):
        for h in read_journal(run_dir):
            if _put_back(store, run_dir / "items" / str(h.n), h):
                restored.append(h)
        shutil.rmtree(run_dir)
    return restored


def runs_in(directory: Path) -> list[Path]:
    """The run directories (those with a journal) inside a holding area or quarantine."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if (p / JOURNAL).is_file())


def recover(store: FilesystemStore) -> list[Held]:
    """Put back what interrupted sweeps left in the holding area, and delete what is left of
    finished sweeps whose holding area was being deleted (call under the lock)."""
    root = holding_root(store.root)
    restored = restore_runs(store, runs_in(root))
    if root.is_dir():
        for leftover in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
            shutil.rmtree(leftover)  # no journal: final, or never started
    return restored

