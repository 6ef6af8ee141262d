"""What regstore needs from a storage backend, and nothing more.

Keys are relative to ``<root>/docker/registry/v2`` and use ``/`` separators; they are built by
:mod:`regstore.layout` from validated names only. A backend never interprets keys beyond that,
and the algorithms never know which backend they run on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import BinaryIO, Iterator, NamedTuple, Protocol, Sequence


class StoreError(Exception):
    """An operation on the store failed; ``key`` says where."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class ReadOnlyStore(StoreError):
    """A removal was attempted on a store opened for reading only (a dry run, or verify)."""


# A component that is empty (a leading, trailing or doubled "/", or no key at all), "." or "..".
_BAD_KEY_RE = re.compile(r"(?:\A|/)\.{0,2}(?:/|\Z)")


def check_key(key: str) -> None:
    """Raise :class:`StoreError` unless ``key`` is a plain relative key: no leading ``/``, no
    empty, ``.`` or ``..`` component. Every backend checks every key with it."""
    if key and "." not in key and "//" not in key and key[0] != "/" and key[-1] != "/":
        return  # nearly every key (no dot at all): a few substring tests, no pattern
    if _BAD_KEY_RE.search(key):
        raise StoreError(key, "refusing a key that is not a plain relative path")


def stat_quietly(store: "Store", key: str) -> Stat | None:
    """``store.stat(key)``, or None where ``key`` is absent or cannot be stat'd (its age or
    size then unknown: callers keep what they cannot age)."""
    try:
        return store.stat(key)
    except StoreError:
        return None


class DirEntry(NamedTuple):
    """One child of a listed directory. ``kind`` is "dir", "file", "symlink" or "other".
    (A named tuple: a listing of a large store makes hundreds of thousands of them.)"""

    name: str
    kind: str


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file found by :meth:`Store.walk`: its key and, where the backend has them for free,
    its size, modification time (seconds since the epoch) and the MD5 of its content in hex
    (an object store's ETag of an object written in one piece: ``md5`` is None where it is
    not known to be one)."""

    key: str
    kind: str  # "file", "symlink", "other"
    size: int | None = None
    mtime: float | None = None
    md5: str | None = None


class Stat(NamedTuple):
    """What a stat gives (a named tuple: a plan stats tens of thousands of candidates)."""

    size: int
    mtime: float
    is_dir: bool = False


class Store(Protocol):
    """A registry store's ``docker/registry/v2`` tree, on some backend."""

    #: Where the store lives, for messages (a path or a URL-like name).
    location: str
    #: False when opened for reading only: every removal raises :class:`ReadOnlyStore`.
    writable: bool
    #: True when :meth:`walk` of a directory costs about as many requests as :meth:`list_dir`
    #: of it and gives every file's size and mtime (an object store's flat listing). Callers
    #: that need the files inside many small directories then walk their parent instead of
    #: listing each one; either way they get the same answer.
    flat_walk: bool
    #: True when a forked process can read the store through this object (a filesystem);
    #: listing is then shared among processes, one per core.
    forkable: bool
    #: True when every request waits on a network (an object store): thread pools then start
    #: with their threads instead of first judging whether the work waits.
    waits: bool

    def exists(self) -> bool:
        """Whether the ``docker/registry/v2`` tree is there at all."""

    def list_dir(self, key: str) -> list[DirEntry]:
        """The children of directory ``key``; ``[]`` if it does not exist. Symlinks are
        reported as such and never followed. Raises :class:`StoreError` if it cannot be read."""

    def subdirectories(self, key: str) -> list[str] | None:
        """The names in directory ``key`` when it is certain, at less cost than
        :meth:`list_dir`, that each is a directory (not a symlink); None when that is not
        known: list it then. Layer links and blob prefixes are such directories, hundreds of
        thousands of them."""

    def walk(self, key: str) -> Iterator[FileEntry]:
        """Every non-directory below ``key``, recursively, without following symlinks.
        Raises :class:`StoreError` when any part of the subtree cannot be listed: a walk is
        complete or it fails, so nobody mistakes a partial listing for the whole."""

    def stat(self, key: str) -> Stat | None:
        """Size and mtime of ``key`` (not following a final symlink), or None if absent."""

    def holds_only_file(self, key: str, name: str) -> bool:
        """True when it is certain, at less cost than listing it, that ``key`` is a directory
        (not a symlink) with no subdirectory that holds the regular file ``name`` (other files
        are not looked for); False when that is not known: list it then. A revision or a tag's
        ``current`` is such a directory, holding its ``link``, hundreds of thousands of times."""

    def read(self, key: str, max_bytes: int) -> bytes:
        """The content of file ``key``. Raises FileNotFoundError if it is absent,
        :class:`StoreError` if it cannot be read or is larger than ``max_bytes``."""

    def open(self, key: str) -> BinaryIO:
        """A binary stream of file ``key`` for hashing large blobs."""

    def remove_file(self, key: str) -> None:
        """Remove one file. Absent is not an error (the goal is reached)."""

    def remove_tree(self, key: str) -> None:
        """Remove directory ``key`` and all below it, never following symlinks.
        Absent is not an error."""

    def remove_trees(self, keys: Sequence[str]) -> dict[str, str]:
        """Remove each directory of ``keys`` as :meth:`remove_tree` does, in as few requests
        as the backend allows (an object store deletes up to 1,000 objects a request). Returns
        the keys that could not be removed, each with why; raises :class:`ReadOnlyStore` on a
        store opened for reading only."""

    def remove_empty_dirs(self, key: str, stop: str) -> None:
        """Remove ``key`` and then its parents while they are empty, never ``stop`` or above."""
