"""Compact sets of digests: what a gc holds of the digests of a big store.

A digest held as a Python string costs about 120 bytes, and a million-blob store lists a
million of them, links each from a repository or more, and references each from several
manifests. Two forms hold them for less:

* :class:`Digests`, an exact set: the hashes packed side by side, 32 bytes a sha256 digest.
  The blob listing and each repository's layer links are kept so.
* :class:`DigestKeys`, a set of keys: a digest reduced to the first 64 bits of its hash, a
  set to a sorted array of them, 8 bytes a digest. Two digests can share a key, so a set of
  keys answers one question only, in the safe direction: is a digest *possibly* in it. The
  mark phase collects keys; a blob whose key is not marked is certainly referenced by nothing
  live, and one whose key is marked is kept, even in the case (one pair in 2^64 by chance; a
  pair crafted on purpose buys an attacker nothing but kept garbage) where another digest
  made it so. bup's gc keeps garbage by the same kind of rule, its bloom filter of live
  objects.

And where the strings themselves are wanted (a repository's revisions: the mark looks up
each one's manifest by it), :class:`DigestTuple` holds them without a set's table: 8 bytes a
digest beside its string, where a set of a few dozen spends 50 to 100.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import accumulate, chain
from typing import AbstractSet, Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from regstore.layout import DIGEST_HEX_LENGTH, is_digest

# Every algorithm a digest may name has six letters ("sha256", "sha384", "sha512"): the hash
# starts after "<algorithm>:", at the same place in every digest. Its first 16 hex digits are
# the key: enough that keys of different digests almost never meet.
_HASH_AT = 7
_KEY_HEX = 16
assert all(len(algorithm) + 1 == _HASH_AT for algorithm in DIGEST_HEX_LENGTH)

_KEY = np.dtype(">u8")  # a key as packed: the hash's first 8 bytes, in order
_CHUNK = 1 << 16  # digests turned into keys at a time
_GROUP = 4096  # packed chunks joined, or digests packed, at a time
_SHA256 = "sha256:"
_RECORD = 32  # bytes of a sha256 hash


def pack(digests: Iterable[str]) -> bytes:
    """The keys of ``digests`` (valid digests, see :func:`regstore.layout.is_digest`), 8 bytes
    each, in the order given. Raises ValueError for a string that is not one."""
    return bytes.fromhex("".join([d[_HASH_AT:_HASH_AT + _KEY_HEX] for d in digests]))


def _keys_of(digests: Iterable[str]) -> np.ndarray:
    """:func:`pack` as native uint64 numbers."""
    return np.frombuffer(pack(digests), dtype=_KEY).astype(np.uint64)


def _keys_in(packed: bytes | memoryview) -> np.ndarray:
    """The keys of packed sha256 hashes (the first 8 bytes of each 32) as native uint64."""
    return np.frombuffer(packed, dtype=_KEY)[::_RECORD // 8].astype(np.uint64)


class DigestKeys:
    """An immutable set of digests as keys. ``digest in keys`` says whether a digest is
    possibly in it; :meth:`absent` says which of many are certainly not, in one pass."""

    __slots__ = ("_keys",)

    def __init__(self, packed: Iterable[bytes] = (), consume: bool = False) -> None:
        """The set of every key in ``packed``: chunks as :func:`pack` makes them. With
        ``consume``, ``packed`` is a list this set may empty: each chunk is let go once its
        keys are in."""
        # One array, filled with the keys as packed, turned into native numbers, sorted and
        # each key kept once where it lies, then cut to them: np.unique took nine times as
        # long (1.7M keys: 0.9 s against 0.1), and every copy of the keys made here is a
        # peak of the whole gc (a million-blob store's mark: 14 MB of keys in 50k chunks,
        # which a gc lets go as they are joined: see _joined).
        chunks = packed if isinstance(packed, list) else list(packed)
        keys = _joined(chunks, consume or chunks is not packed)
        if _KEY != np.dtype(np.uint64):
            keys.byteswap(inplace=True)
        keys.sort()
        keys.resize(_keep_first(keys), refcheck=False)  # no view of it is left
        self._keys = keys

    @classmethod
    def of(cls, digests: Iterable[str]) -> DigestKeys:
        return cls([pack(digests)])

    @classmethod
    def of_digests(cls, digests: Digests) -> DigestKeys:
        """The keys of a :class:`Digests`, without a string made."""
        keys = digests.keys()  # its sha256 ones in order, distinct but for shared keys
        if len(keys) > 1 and not (keys[1:] > keys[:-1]).all():
            keys = np.unique(keys)
        made = cls.__new__(cls)
        made._keys = keys
        return made

    def __len__(self) -> int:
        """The number of keys: of digests, but for digests that share a key."""
        return len(self._keys)

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, str):
            return False
        try:
            key = int(digest[_HASH_AT:_HASH_AT + _KEY_HEX], 16)
        except ValueError:
            return False  # not a digest: nothing of it was put in
        i = int(np.searchsorted(self._keys, key))
        return i < len(self._keys) and int(self._keys[i]) == key

    def absent(self, digests: Sequence[str]) -> list[int]:
        """The positions in ``digests`` (valid digests) of those certainly not in the set."""
        positions: list[int] = []
        # A chunk at a time: the hex of a million keys at once is 65 MB of short strings.
        for start in range(0, len(digests), _CHUNK):
            keys = _keys_of(digests[start:start + _CHUNK])
            positions += (self._absent_keys(keys) + start).tolist()
        return positions

    def _absent_keys(self, keys: np.ndarray) -> np.ndarray:
        """The positions in ``keys`` (native uint64) of those not in the set."""
        if not len(self._keys):
            return np.arange(len(keys))
        at = np.searchsorted(self._keys, keys)
        return np.flatnonzero(self._keys[np.minimum(at, len(self._keys) - 1)] != keys)

    def missing(self, digests: Iterable[str]) -> list[str]:
        """Those of ``digests`` (valid digests) certainly not in the set, in their order."""
        if isinstance(digests, Digests):  # their keys are there already: no strings made
            return [digest for _, digest in self.missing_in([digests])]
        given = digests if isinstance(digests, (list, tuple)) else list(digests)
        return [given[i] for i in self.absent(given)]

    def missing_in(self, sets: Sequence[Digests]) -> list[tuple[int, str]]:
        """The digests of each of ``sets`` certainly not in this set, as (position of the set
        in ``sets``, digest), in order: one pass over the keys of all (a store's layer
        links, a set per repository)."""
        found: list[tuple[int, str]] = []
        # Through the keys a batch at a time: all at once were 60 MB more at 1.4M links.
        for batch in _batches(sets):
            starts = [0, *accumulate(stop - start for _, start, stop in batch)]
            keys = np.concatenate([sets[which].keys(start, stop) for which, start, stop in batch])
            for i in self._absent_keys(keys).tolist():
                part = bisect_right(starts, i) - 1
                which, start, _ = batch[part]
                found.append((which, sets[which][start + i - starts[part]]))
        return found

    def absent_in(self, sets: Sequence[DigestKeys]) -> list[tuple[int, int]]:
        """The keys of each of ``sets`` not in this set, as (position of the set in
        ``sets``, key as a native int), in order: one pass over the keys of all."""
        found: list[tuple[int, int]] = []
        for batch in _batches(sets):
            starts = [0, *accumulate(stop - start for _, start, stop in batch)]
            keys = np.concatenate([sets[which]._keys[start:stop] for which, start, stop in batch])
            for i in self._absent_keys(keys).tolist():
                found.append((batch[bisect_right(starts, i) - 1][0], int(keys[i])))
        return found

    @staticmethod
    def hashes_with_keys(hashes: Iterable[str], keys: AbstractSet[int]) -> list[str]:
        """Those of ``hashes`` (a digest's part after the algorithm, as a directory names it)
        whose key is among ``keys``: the hashes that start with a key's hex digits."""
        starts = {f"{key:0{_KEY_HEX}x}" for key in keys}
        return [h for h in hashes if h[:_KEY_HEX] in starts]

    @staticmethod
    def key_of(digest: str) -> int:
        """The key of ``digest`` (a valid digest), as a native int."""
        return int(digest[_HASH_AT:_HASH_AT + _KEY_HEX], 16)

    def common(self, other: DigestKeys) -> list[int]:
        """The keys of ``other`` that are in this set too, in order, as native ints."""
        return np.delete(other._keys, self._absent_keys(other._keys)).tolist()

    def covers(self, other: DigestKeys) -> bool:
        """Whether every key of ``other`` is in this set."""
        return not len(self._absent_keys(other._keys))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DigestKeys):
            return NotImplemented
        return bool(np.array_equal(self._keys, other._keys))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DigestKeys({len(self)} keys)"


def packed_copy(digests: list[str]) -> Callable[[int, int], list[str]]:
    """A function of (start, stop) giving ``digests[start:stop]`` as new strings equal to
    them, made from a packed copy (32 bytes a digest): what takes them touches none of the
    given strings. Where the digests are not all sha256 in their canonical spelling, the
    function gives the slice itself."""
    packed = bytearray(_RECORD * len(digests))
    for start in range(0, len(digests), _GROUP):  # a group at a time: all at once, 50 MB more
        group = digests[start:start + _GROUP]
        text = "".join([d[_HASH_AT:] for d in group])
        try:
            hashes = bytes.fromhex(text)
        except ValueError:
            hashes = b""
        if hashes.hex() != text or set(map(len, group)) != {_HASH_AT + 2 * _RECORD} or \
                {d[:_HASH_AT] for d in group} != {_SHA256}:
            return lambda first, stop: digests[first:stop]
        packed[_RECORD * start:_RECORD * start + len(hashes)] = hashes

    return lambda start, stop: _sha256_digests(packed[start * _RECORD:stop * _RECORD])


def _sha256_digests(hashes: bytes | bytearray) -> list[str]:
    """The sha256 digests, as new strings, of the packed 32-byte ``hashes``."""
    text = hashes.hex()
    return [_SHA256 + text[i:i + 2 * _RECORD] for i in range(0, len(text), 2 * _RECORD)]


def _joined(chunks: list[bytes], consume: bool = False) -> np.ndarray:
    """The keys packed in ``chunks``, end to end, as they are packed (big-endian) in an array
    of native uint64: small chunks joined a group at a time (a join of all at once holds a
    buffer description, 80 bytes, per chunk while it runs, more than the keys of a mark's
    chunks), large ones copied as they are. With ``consume``, each chunk's place in the list
    is emptied once it is copied: a large chunk, a mapping of its own (see
    regstore.cli.MMAP_THRESHOLD), goes back to the system as the array's pages fill, and the
    keys are not held twice."""
    joined = np.empty(sum(map(len, chunks)) // _KEY.itemsize, dtype=np.uint64)
    with memoryview(joined).cast("B") as into:
        at = 0
        small: list[bytes] = []

        def flush() -> None:
            nonlocal at
            group = b"".join(small)
            into[at:at + len(group)] = group
            at += len(group)
            small.clear()

        for i, chunk in enumerate(chunks):
            if len(chunk) < _LARGE_CHUNK:
                small.append(chunk)
                if len(small) >= _GROUP:
                    flush()
            else:
                flush()
                into[at:at + len(chunk)] = chunk
                at += len(chunk)
            if consume:
                chunks[i] = b""
        flush()
    if consume:
        chunks.clear()
    return joined


_LARGE_CHUNK = 1 << 16  # bytes: a chunk of keys copied by itself, not joined with others


def _keep_first(keys: np.ndarray) -> int:
    """Move each distinct key of the sorted ``keys`` once to their front, in order, a chunk
    at a time (no copy of them all); returns how many there are."""
    kept = 0
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start:start + _CHUNK]
        first = np.empty(len(chunk), dtype=bool)
        first[0] = kept == 0 or chunk[0] != keys[kept - 1]
        np.not_equal(chunk[1:], chunk[:-1], out=first[1:])
        moved = chunk[first]  # a copy: the front may overlap the chunk
        keys[kept:kept + len(moved)] = moved
        kept += len(moved)
    return kept


def _batches(sets: Sequence[Digests | DigestKeys]) -> Iterator[list[tuple[int, int, int]]]:
    """``sets`` cut into batches of about :data:`_CHUNK` digests, each a list of (position
    of a set, start, stop): consecutive, in order, a set larger than a batch in parts."""
    batch: list[tuple[int, int, int]] = []
    size = 0
    for which, digests in enumerate(sets):
        for start in range(0, len(digests), _CHUNK):
            stop = min(start + _CHUNK, len(digests))
            batch.append((which, start, stop))
            size += stop - start
            if size >= _CHUNK:
                yield batch
                batch, size = [], 0
    if batch:
        yield batch


class Digests:
    """An immutable set of distinct digests, exact, in sorted order: the 32-byte hashes of its
    sha256 digests packed in one bytes object, digests of the other algorithms (which
    registries seldom hold) as strings. Iterating makes each digest's string anew."""

    __slots__ = ("_sha256", "_others")

    def __init__(self, digests: Iterable[str] = ()) -> None:
        """The set of ``digests``, valid digests (see :func:`regstore.layout.is_digest`)."""
        sha256, others = set(), set()
        for digest in digests:
            (sha256 if digest.startswith(_SHA256) else others).add(digest)
        self._sha256 = bytes.fromhex("".join(sorted(d[_HASH_AT:] for d in sha256)))
        self._others = tuple(sorted(others))

    @classmethod
    def of_hashes(cls, algorithm: str, hashes: list[str]) -> Digests:
        """The digests ``<algorithm>:<hash>`` of ``hashes``, each a hash of the algorithm in
        lower-case hex (a listing's names, checked by :func:`regstore.layout.all_hashes`): for
        sha256, without a string made per digest."""
        if algorithm + ":" != _SHA256:
            return cls(f"{algorithm}:{h}" for h in hashes)
        return cls._made(bytes.fromhex("".join(sorted(set(hashes)))), ())

    @classmethod
    def union(cls, parts: Iterable[Digests], more: Iterable[str] = ()) -> Digests:
        """The union of ``parts`` and of the digests ``more``. Parts whose digests each lie
        below the next part's (a store's blob prefixes listed in order) are joined as they
        are; any others go through strings."""
        parts = sorted((p for p in parts if p), key=lambda p: p._first())
        more = list(more)
        if not more and all(a._sha256[-_RECORD:] < b._sha256[:_RECORD]
                            for a, b in zip(parts, parts[1:]) if a._sha256 and b._sha256):
            others = sorted(set(chain.from_iterable(p._others for p in parts)))
            return cls._made(b"".join(p._sha256 for p in parts), tuple(others))
        return cls(chain(chain.from_iterable(parts), more))

    @classmethod
    def merged(cls, parts: Iterable[Digests | Iterable[str]]) -> Digests:
        """The union of ``parts``, in any order and overlapping: each a :class:`Digests`
        (joined without a string made) or digests."""
        packed: list[bytes] = []
        others: set[str] = set()
        loose: list[str] = []
        for part in parts:
            if isinstance(part, Digests):
                packed.append(part._sha256)
                others.update(part._others)
            else:
                loose += part
        if loose:
            more = cls(loose)
            packed.append(more._sha256)
            others.update(more._others)
        # Sorted and each kept once as 32-byte records, compared byte by byte: the order of
        # their hex, as the set keeps it.
        records = np.unique(np.frombuffer(b"".join(packed), dtype=f"V{_RECORD}"))
        return cls._made(records.tobytes(), tuple(sorted(others)))

    @classmethod
    def _made(cls, sha256: bytes, others: tuple[str, ...]) -> Digests:
        made = cls.__new__(cls)
        made._sha256, made._others = sha256, others
        return made

    def _first(self) -> bytes:
        return self._sha256[:_RECORD]

    def __len__(self) -> int:
        return len(self._sha256) // _RECORD + len(self._others)

    def __iter__(self) -> Iterator[str]:
        step = 4096  # hashes made hex at a time
        for start in range(0, len(self._sha256), step * _RECORD):
            yield from _sha256_digests(self._sha256[start:start + step * _RECORD])
        yield from self._others

    def __getitem__(self, i: int) -> str:
        """The ``i``-th digest, in sorted order."""
        n = len(self._sha256) // _RECORD
        if not -len(self) <= i < len(self):
            raise IndexError("digest index out of range")
        i %= len(self)
        if i >= n:
            return self._others[i - n]
        return _SHA256 + self._sha256[i * _RECORD:(i + 1) * _RECORD].hex()

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, str):
            return False
        if not digest.startswith(_SHA256):
            return digest in self._others
        # Only the canonical spelling is a member: fromhex would read "AB" as "ab".
        return is_digest(digest) and self._position(bytes.fromhex(digest[_HASH_AT:])) is not None

    def strings(self, start: int, stop: int) -> list[str]:
        """The digests from position ``start`` to ``stop``, in sorted order, as new strings."""
        n = len(self._sha256) // _RECORD
        made = _sha256_digests(self._sha256[min(start, n) * _RECORD:min(stop, n) * _RECORD])
        return made + list(self._others[max(start - n, 0):max(stop - n, 0)])

    @property
    def others(self) -> tuple[str, ...]:
        """The digests of algorithms other than sha256, in order."""
        return self._others

    def starting(self, text: str) -> list[str]:
        """The digests that start with ``text`` (say ``sha256:ab``, the blobs of a prefix
        directory), in order: those of a sha256 prefix found by a binary search of the
        packed hashes, no string made of the others."""
        hexes = text[_HASH_AT:_HASH_AT + 2]
        if not text.startswith(_SHA256) or len(hexes) < 2 or not _canonical_hex(hexes):
            return [d for d in self if d.startswith(text)]
        first = bytes.fromhex(hexes)
        n = len(self._sha256) // _RECORD
        records = range(n)
        lo = bisect_left(records, first, key=lambda j: self._sha256[j * _RECORD:j * _RECORD + 1])
        hi = bisect_right(records, first, key=lambda j: self._sha256[j * _RECORD:j * _RECORD + 1])
        return [d for d in self.strings(lo, hi) if d.startswith(text)]

    def packed_keys(self) -> bytes:
        """The key of every digest, as :func:`pack` makes them."""
        return np.frombuffer(self._sha256, dtype=_KEY)[::_RECORD // 8].tobytes() + \
            pack(self._others)

    def _position(self, record: bytes) -> int | None:
        """Where the hash ``record`` is among the packed ones, if it is: a binary search."""
        packed = self._sha256
        i = bisect_left(range(len(packed) // _RECORD), record,
                        key=lambda j: packed[j * _RECORD:(j + 1) * _RECORD])
        return i if packed[i * _RECORD:(i + 1) * _RECORD] == record else None

    def keys(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The key of each digest (see :class:`DigestKeys`) from position ``start`` to
        ``stop``, in the set's order, native uint64."""
        n = len(self._sha256) // _RECORD
        stop = len(self) if stop is None else min(stop, len(self))
        sha256 = memoryview(self._sha256)[min(start, n) * _RECORD:min(stop, n) * _RECORD]
        keys = _keys_in(sha256)
        if stop > n:
            keys = np.concatenate([keys, _keys_of(self._others[max(start - n, 0):stop - n])])
        return keys

    def missing(self, digests: Sequence[str]) -> list[str]:
        """Those of ``digests`` (valid digests) not in the set, in their order: a pass over
        the set's keys, then the full hash of each digest whose key it holds."""
        if not self._sha256:
            return [d for d in digests if d not in self._others]
        index = _keys_in(self._sha256)
        records = np.frombuffer(self._sha256, dtype=_KEY).reshape(-1, _RECORD // 8)
        gone: list[int] = []
        for start in range(0, len(digests), _CHUNK):
            chunk = digests[start:start + _CHUNK]
            sha256 = [i for i, d in enumerate(chunk, start) if d.startswith(_SHA256)]
            if len(sha256) < len(chunk):
                gone += [i for i, d in enumerate(chunk, start)
                         if not d.startswith(_SHA256) and d not in self._others]
            asked = np.frombuffer(bytes.fromhex("".join([digests[i][_HASH_AT:] for i in sha256])),
                                  dtype=_KEY).reshape(-1, _RECORD // 8)
            at = np.minimum(np.searchsorted(index, asked[:, 0].astype(np.uint64)),
                            len(index) - 1)
            found = (records[at] == asked).all(axis=1)
            # The first hash with the key is not always the one asked for: when another
            # shares its key (rare beyond measure), ask again in full.
            gone += [sha256[i] for i in np.flatnonzero(~found).tolist()
                     if digests[sha256[i]] not in self]
        return [digests[i] for i in sorted(gone)]

    # The operators of a set, as DigestTuple's: each gives a new set of strings, this set's
    # made once for it (a compact inventory's revisions, a repository at a time).
    def __sub__(self, other: AbstractSet[str] | Digests) -> set[str]:
        return set(self).difference(other)

    def __rsub__(self, other: AbstractSet[str]) -> set[str]:
        return set(other).difference(self)

    def __or__(self, other: AbstractSet[str] | Digests) -> set[str]:
        return set(self).union(other)

    __ror__ = __or__

    def __and__(self, other: AbstractSet[str] | Digests) -> set[str]:
        return set(self).intersection(other)

    __rand__ = __and__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (set, frozenset)):
            return len(self) == len(other) and set(self) == other
        if not isinstance(other, Digests):
            return NotImplemented
        return self._sha256 == other._sha256 and self._others == other._others

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Digests._made, (self._sha256, self._others))

    def __repr__(self) -> str:
        return f"Digests({len(self)} digests)"


class DigestsJoin:
    """A :class:`Digests` made of sets given one after another, each lying below the next (a
    store's blob prefixes listed in order), joined as they come: the sets of a million-blob
    store's prefixes and their union had been 32 MB each at once. A set given out of order is
    joined through strings at the end."""

    __slots__ = ("_sha256", "_aside")

    def __init__(self) -> None:
        # Grown in place, as a block of its own past malloc's mmap threshold (see
        # regstore.cli.MMAP_THRESHOLD): no copy of what it holds when it grows.
        self._sha256 = bytearray()
        self._aside: list[Digests] = []

    def add(self, part: Digests) -> None:
        if part._others or (self._sha256 and part._sha256 and
                            part._sha256[:_RECORD] <= self._sha256[-_RECORD:]):
            self._aside.append(part)
        else:
            self._sha256 += part._sha256

    def done(self, more: Iterable[str] = ()) -> Digests:
        """The union of the sets given and of the digests ``more``."""
        # The bytearray itself, no bytes copy of it: a Digests never changes its hashes.
        joined = Digests._made(self._sha256, ())  # type: ignore[arg-type]
        self._sha256 = bytearray()
        more = list(more)
        if self._aside or more:
            return Digests.union([joined, *self._aside], more)
        return joined


class DigestColumn:
    """A sequence of digests or None, sha256 digests packed, 32 bytes each; anything else
    (None, a digest of another algorithm) kept beside them by position. Each item is made a
    string anew when asked for: the 128k tags of a million-blob store point at manifests
    whose strings, once a compact inventory's revisions no longer share them, would take up
    to 15 MB."""

    __slots__ = ("_sha256", "_odd")

    def __init__(self, items: Sequence[str | None]) -> None:
        odd: dict[int, str | None] = {}
        hexes: list[str] = []
        for i, item in enumerate(items):
            if item is not None and item.startswith(_SHA256) and is_digest(item):
                hexes.append(item[_HASH_AT:])
            else:
                odd[i] = item
                hexes.append(_NO_HASH)
        self._sha256 = bytes.fromhex("".join(hexes))
        self._odd = odd or None

    def __len__(self) -> int:
        return len(self._sha256) // _RECORD

    def __getitem__(self, i: int) -> str | None:
        if self._odd and i in self._odd:
            return self._odd[i]
        if not 0 <= i < len(self):
            raise IndexError("digest index out of range")
        return _SHA256 + self._sha256[i * _RECORD:(i + 1) * _RECORD].hex()

    def tolist(self) -> list[str | None]:
        items: list[str | None] = _sha256_digests(self._sha256)  # type: ignore[assignment]
        for i, item in (self._odd or {}).items():
            items[i] = item
        return items

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DigestColumn):
            return NotImplemented
        return self.tolist() == other.tolist()

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_column, (self._sha256, self._odd))

    def __repr__(self) -> str:
        return f"DigestColumn({self.tolist()!r})"


_NO_HASH = "00" * _RECORD  # in the place of an item kept beside the packed ones


def _canonical_hex(text: str) -> bool:
    """Whether ``text`` is lower-case hex, as ``bytes.hex`` writes it."""
    try:
        return bytes.fromhex(text).hex() == text
    except ValueError:
        return False


def _column(sha256: bytes, odd: dict[int, str | None] | None) -> DigestColumn:
    column = DigestColumn.__new__(DigestColumn)
    column._sha256, column._odd = sha256, odd
    return column


class DigestTuple(tuple):  # type: ignore[type-arg]
    """An immutable set of strings as their sorted tuple: ``in`` by binary search, and the
    operators of a set (``-``, ``|``, ``&``, either side, with a set or another of these),
    which give a new ``set``. Equal to a set or frozenset of the same strings."""

    __slots__ = ()

    def __new__(cls, items: Iterable[str] = ()) -> DigestTuple:
        return super().__new__(cls, sorted(set(items)))

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, str):
            return False
        i = bisect_left(self, item)
        return i < len(self) and self[i] == item

    def __sub__(self, other: AbstractSet[str] | DigestTuple | Digests) -> set[str]:
        other = set(other) if isinstance(other, Digests) else other  # no search per digest
        return {x for x in self if x not in other}

    def __rsub__(self, other: AbstractSet[str]) -> set[str]:
        return {x for x in other if x not in self}

    def __or__(self, other: AbstractSet[str] | DigestTuple | Digests) -> set[str]:  # type: ignore[override]
        return set(self).union(other)

    __ror__ = __or__

    def __and__(self, other: AbstractSet[str] | DigestTuple | Digests) -> set[str]:
        if isinstance(other, Digests):
            return other & set(self)
        return {x for x in other if x in self}

    __rand__ = __and__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (set, frozenset)):
            return len(self) == len(other) and all(x in other for x in self)
        if isinstance(other, DigestTuple):
            return tuple.__eq__(self, other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (DigestTuple, (tuple(self),))

    def __repr__(self) -> str:
        return f"DigestTuple({list(self)!r})"
