"""The rotation state of ``regstore verify``: which blob was last verified when.

A bounded run (``--max-bytes``, ``--max-duration``) hashes only part of the store; the state
lets the next run pick up where it stopped, least recently verified blobs first, so that cron
runs cover the whole store pass after pass (borg's ``--max-duration`` and restic's
``--read-data-subset`` are the models). The state only orders the work: a blob counts as
verified because its bytes hashed to its digest in some run, never because the state says so.

The file (``<root>/.regstore/verify-state`` by default, beside the ``docker`` tree and never
inside it) is text, UTF-8, one record a line::

    regstore-verify-state 1
    pass <pass started: seconds since the epoch>
    <digest> <ok|bad> <hashed at> <size> <mtime>
    ...
    end <number of digest lines> <xxh3_64 of every byte before this line, 16 hex digits>

Times are Python float reprs (seconds since the epoch); ``ok`` means the data hashed to its
digest, ``bad`` that it did not (such a blob is hashed again on every run, so its error keeps
being reported until it is fixed); ``size`` and ``mtime`` are those of the blob's ``data``
when it was hashed: a blob whose data changed since (re-pushed after a quarantine, restored
from a backup) counts as never verified. Digest lines are sorted by digest.

It survives crashes: a new state is written to a temporary file beside the old one, fsynced,
and renamed over it, so a run killed mid-write leaves the previous state whole. It detects its
own corruption: a missing ``end`` line (truncation), a count or checksum that does not match,
or any line that does not parse makes :func:`load_state` raise :class:`StateCorrupt`; the
caller then ignores the state and verifies everything.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from regstore import layout
from regstore.lock import STATE_DIR
from regstore.store.filesystem import fsync_dir

MAGIC = "regstore-verify-state"
VERSION = 1
# A real state has one ~100-byte line per blob; this bounds what a garbage file can make us
# read (50 million blobs).
MAX_STATE_BYTES = 5 * 1024**3


class StateCorrupt(Exception):
    """The state file exists but failed its own checks; the message says which."""


@dataclass(frozen=True, slots=True)
class Verified:
    """When a blob was last hashed, whether it hashed right, and the size and mtime its data
    had then."""

    at: float
    size: int
    mtime: float
    ok: bool = True


@dataclass
class VerifyState:
    """Per-blob verification times, and when the current pass over the store started.

    A blob is *due* in the current pass when it was never verified, or last verified before
    the pass started. A pass is complete when nothing is due; the next bounded run then
    starts a new one.
    """

    entries: dict[str, Verified] = field(default_factory=dict)
    pass_started: float = 0.0

    def _current(self, digest: str, size: int, mtime: float) -> Verified | None:
        entry = self.entries.get(digest)
        if entry is None or entry.size != size or entry.mtime != mtime:
            return None
        return entry

    def last_verified(self, digest: str, size: int, mtime: float) -> float | None:
        """When ``digest`` last hashed right, or None if never, if it hashed wrong, or if its
        data (``size``, ``mtime``) changed since."""
        entry = self._current(digest, size, mtime)
        return entry.at if entry is not None and entry.ok else None

    def known_bad(self, digest: str, size: int, mtime: float) -> bool:
        """Whether ``digest``, with data of this ``size`` and ``mtime``, hashed wrong last time."""
        entry = self._current(digest, size, mtime)
        return entry is not None and not entry.ok

    def record(self, digest: str, size: int, mtime: float, at: float, ok: bool = True) -> None:
        """Note that ``digest`` (with data of ``size`` and ``mtime``) was hashed at ``at``, and
        whether it hashed to its digest."""
        self.entries[digest] = Verified(at, size, mtime, ok)

    def keep_only(self, digests: set[str]) -> None:
        """Drop entries of blobs no longer in the store."""
        for digest in [d for d in self.entries if d not in digests]:
            del self.entries[digest]


def default_state_path(root: Path) -> Path:
    """``<root>/.regstore/verify-state``: beside the ``docker`` tree, next to the lock."""
    return Path(root) / STATE_DIR / "verify-state"


def cache_state_path(identity: str, environ: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/regstore/verify-state-<16 hex>`` (``~/.cache`` when unset): where the
    state of a store without a local root (an S3 bucket) is kept, one file per store, named
    after a hash of ``identity`` (its endpoint, bucket and prefix)."""
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    name = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
    return Path(base) / "regstore" / f"verify-state-{name}"


def dumps(state: VerifyState) -> bytes:
    """The bytes of the state file for ``state`` (format in the module docstring)."""
    lines = [f"{MAGIC} {VERSION}\n", f"pass {state.pass_started!r}\n"]
    for digest in sorted(state.entries):
        e = state.entries[digest]
        lines.append(f"{digest} {'ok' if e.ok else 'bad'} {e.at!r} {e.size} {e.mtime!r}\n")
    body = "".join(lines).encode("utf-8")
    checksum = xxhash.xxh3_64_hexdigest(body)
    return body + f"end {len(state.entries)} {checksum}\n".encode("ascii")


def loads(data: bytes) -> VerifyState:
    """Parse a state file's bytes; raise :class:`StateCorrupt` unless every check passes."""
    if not data.endswith(b"\n"):
        raise StateCorrupt("it does not end with a complete line (truncated?)")
    cut = data.rfind(b"\n", 0, len(data) - 1) + 1
    body, trailer = data[:cut], data[cut:-1]
    parts = trailer.split(b" ")
    if len(parts) != 3 or parts[0] != b"end":
        raise StateCorrupt("its last line is not the 'end' line (truncated?)")
    if parts[2].decode("ascii", "replace") != xxhash.xxh3_64_hexdigest(body):
        raise StateCorrupt("its checksum does not match its content")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise StateCorrupt("it is not UTF-8") from None
    lines = text.splitlines()
    if not lines or lines[0] != f"{MAGIC} {VERSION}":
        raise StateCorrupt(f"its first line is not '{MAGIC} {VERSION}'")
    state = VerifyState()
    if len(lines) < 2 or not lines[1].startswith("pass "):
        raise StateCorrupt("its second line is not the 'pass' line")
    state.pass_started = _number(lines[1][5:], 2)
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split(" ")
        if len(fields) != 5 or not layout.is_digest(fields[0]) or fields[1] not in ("ok", "bad"):
            raise StateCorrupt(f"line {number} is not '<digest> <ok|bad> <time> <size> <mtime>'")
        size = fields[3]
        if not (size.isascii() and size.isdigit()):
            raise StateCorrupt(f"line {number}: size {size[:20]!r} is not a number")
        state.entries[fields[0]] = Verified(_number(fields[2], number), int(size),
                                            _number(fields[4], number), fields[1] == "ok")
    if parts[1] != str(len(state.entries)).encode():
        raise StateCorrupt("its record count does not match its content")
    return state


def _number(text: str, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise StateCorrupt(f"line {line}: {text[:30]!r} is not a number") from None
    if not math.isfinite(value):
        raise StateCorrupt(f"line {line}: {text[:30]!r} is not a finite number")
    return value


def load_state(path: Path) -> VerifyState | None:
    """The state stored at ``path``; None if there is none; :class:`StateCorrupt` if the file
    fails its checks; OSError if it cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return None
    if len(data) > MAX_STATE_BYTES:
        raise StateCorrupt(f"it is larger than {MAX_STATE_BYTES} bytes")
    return loads(data)


def save_state(path: Path, state: VerifyState) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file beside it, fsynced, renamed
    over it, and the directory fsynced. Raises OSError when it cannot; the old state (if any)
    is then untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            data = dumps(state)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        # Not swallowed: the error goes on; only our own temporary file is cleaned up.
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
