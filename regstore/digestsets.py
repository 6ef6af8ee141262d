"""Sets of digests held as 8-byte keys: what a gc holds of the digests a store references.

A digest held as a Python string costs about 120 bytes, and a million-blob store references a
million of them, each from several manifests. Here a digest is reduced to its key, the first
64 bits of its hash, and a set of digests to a sorted array of keys: 8 bytes a digest.

Two digests can share a key, so a set of keys answers one question only, in the safe
direction: is a digest *possibly* in it. The mark phase collects keys; a blob whose key is not
marked is certainly referenced by nothing live, and one whose key is marked is kept, even in
the case (one pair in 2^64 by chance; a pair crafted on purpose buys an attacker nothing but
kept garbage) where another digest made it so. bup's gc keeps garbage by the same kind of
rule, its bloom filter of live objects.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from regstore.layout import DIGEST_HEX_LENGTH

# Every algorithm a digest may name has six letters ("sha256", "sha384", "sha512"): the hash
# starts after "<algorithm>:", at the same place in every digest. Its first 16 hex digits are
# the key: enough that keys of different digests almost never meet.
_HASH_AT = 7
_KEY_HEX = 16
assert all(len(algorithm) + 1 == _HASH_AT for algorithm in DIGEST_HEX_LENGTH)

_KEY = np.dtype(">u8")  # a key as packed: the hash's first 8 bytes, in order
_CHUNK = 1 << 16  # digests turned into keys at a time


def pack(digests: Iterable[str]) -> bytes:
    """The keys of ``digests`` (valid digests, see :func:`regstore.layout.is_digest`), 8 bytes
    each, in the order given. Raises ValueError for a string that is not one."""
    return bytes.fromhex("".join([d[_HASH_AT:_HASH_AT + _KEY_HEX] for d in digests]))


class DigestKeys:
    """An immutable set of digests as keys. ``digest in keys`` says whether a digest is
    possibly in it; :meth:`absent` says which of many are certainly not, in one pass."""

    __slots__ = ("_keys",)

    def __init__(self, packed: Iterable[bytes] = ()) -> None:
        """The set of every key in ``packed``: chunks as :func:`pack` makes them."""
        keys = np.frombuffer(b"".join(packed), dtype=_KEY)
        self._keys = np.unique(keys.astype(np.uint64))

    @classmethod
    def of(cls, digests: Iterable[str]) -> DigestKeys:
        return cls([pack(digests)])

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
            keys = np.frombuffer(pack(digests[start:start + _CHUNK]), dtype=_KEY)
            positions += (self._absent_keys(keys.astype(np.uint64)) + start).tolist()
        return positions

    def _absent_keys(self, keys: np.ndarray) -> np.ndarray:
        """The positions in ``keys`` (native uint64) of those not in the set."""
        if not len(self._keys):
            return np.arange(len(keys))
        at = np.searchsorted(self._keys, keys)
        return np.flatnonzero(self._keys[np.minimum(at, len(self._keys) - 1)] != keys)

    def missing(self, digests: Iterable[str]) -> list[str]:
        """Those of ``digests`` (valid digests) certainly not in the set, in their order."""
        given = digests if isinstance(digests, (list, tuple)) else list(digests)
        return [given[i] for i in self.absent(given)]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DigestKeys):
            return NotImplemented
        return bool(np.array_equal(self._keys, other._keys))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DigestKeys({len(self)} keys)"
