"""The mark phase: which manifests are live, and every blob they reach.

Without ``delete_untagged`` every linked revision is live, as in the registry's GC. With it,
the live roots of a repository are the manifests its tags point at; from there liveness
follows, within the repository, to the children of a live index (to any depth) and to the
manifests whose ``subject`` is live (OCI 1.1 referrers), until nothing changes. Children of a
tagged index stay: the registry 2.8 GC unlinks them (distribution#3004, #3178); referrers of a
live image stay: no registry GC knows ``subject``.

A blob is marked when a live manifest of any repository reaches it. When a live manifest cannot
be read or understood, what it references is unknown: the mark is incomplete and says why, and
the caller must not sweep.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from typing import AbstractSet, Callable, Iterable, Iterator, Mapping

from regstore import layout
from regstore.digestsets import DigestKeys, Digests, pack, packed_copy
from regstore.findings import ERROR, WARNING, Finding
from regstore.inventory import Inventory, Repository, each_repository
from regstore.manifest import MAX_MANIFEST_BYTES, Manifest, ManifestError, References, Shipment, \
    parse_manifest, parse_references
from regstore.pool import IOPool, PoolPerProcess, fork_map, stat_many
from regstore.store.base import Store, StoreError, stat_quietly

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Unusable:
    """Why a manifest could not be used: ``missing`` (no blob), ``unreadable`` (I/O) or
    ``invalid`` (not a manifest regstore understands)."""

    reason: str
    detail: str


@dataclass
class MarkResult:
    """The outcome of the mark phase."""

    marked: DigestKeys = field(default_factory=DigestKeys)  # every digest a live manifest reaches
    # repo -> live manifest digests, when asked for (mark(keep_live=True)): a gc needs only
    # the marked keys; at a million blobs the sets are 13 MB at the end of the mark
    live: dict[str, set[str]] = field(default_factory=dict)
    dead: dict[str, set[str]] = field(default_factory=dict)  # repo -> revisions to unlink (-m)
    kept_in_doubt: dict[str, set[str]] = field(default_factory=dict)  # untagged, unparsable
    # untagged revisions kept only because their link is younger than the grace period
    young: dict[str, set[str]] = field(default_factory=dict)
    delete_untagged: bool = False  # the mode: are untagged revisions roots or not
    # every manifest read: parsed in full, or only its references (mark(full=False)); in a
    # mark without full or delete_untagged, FOLDED for an image manifest read ahead
    manifests: dict[str, Manifest | References | bytes | Unusable] = field(default_factory=dict)
    problems: list[Finding] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every live manifest was understood and the inventory was whole."""
        return not any(p.severity == ERROR for p in self.problems)


# What the cache keeps of a manifest it understood: the manifest, its References, or, for
# the image manifests that reference nothing but blobs (nearly all), their keys alone.
Parsed = Manifest | References | bytes

#: What a manifest whose blob the blob listing lacks is.
NOT_LISTED = Unusable("missing", "its blob is not in the blob store")

#: What a folding cache (``ManifestCache(fold=True)``) keeps of an image manifest whose blobs'
#: keys went to the mark as it was read: nothing left to follow.
FOLDED = References(b"", (), None)


class _Folded(bytes):
    """The blob keys of a slice's image manifests, read by a folding cache: the parse result
    of the first of them, where the others have None (one object a slice crosses to the
    parent, not one per manifest)."""

    __slots__ = ()


def _one_folded(outcome: list[Parsed | Unusable | None]) -> list[Parsed | Unusable | None]:
    """``outcome`` (slices of a :class:`ManifestCache` that folds) with the keys of all its
    :class:`_Folded` joined into the first of them, None at the others."""
    at = [i for i, x in enumerate(outcome) if type(x) is _Folded]
    if len(at) > 1:
        outcome[at[0]] = _Folded(b"".join([outcome[i] for i in at]))  # type: ignore[misc]
        for i in at[1:]:
            outcome[i] = None
    return outcome


class ManifestCache:
    """Reads each manifest blob once, whatever number of repositories link it; keeps the
    parsed :class:`Manifest`, or with ``full`` False only its :class:`References` (see
    :data:`Parsed`).

    With ``fold`` (and not ``full``), for a mark in which every manifest prefetched is live (a
    gc without -m), the blobs' keys of each image manifest prefetched go to :attr:`marking`
    as it is read, and the cache keeps nothing of it: at a million blobs the 200k image
    manifests' keys, kept one object each, took 18 MB to the end of the gc. What was
    prefetched is then :attr:`table` (packed), and :meth:`get` answers :data:`FOLDED` for a
    manifest of it that :attr:`loaded` lacks: the dict and its keys, the digests' strings,
    had taken 38 MB."""

    def __init__(self, store: Store, blobs: Digests | None, jobs: int = 8,
                 full: bool = True, fold: bool = False) -> None:
        # blobs: the listed blob digests, to skip reading what is known absent; None to try
        # every read (blobs written after the listing).
        if fold and full:
            raise ValueError("a cache that folds keeps References only (full=False)")
        self.store = store
        self.blobs = blobs
        self.jobs = jobs
        self.full = full
        self.fold = fold
        self.loaded: dict[str, Parsed | Unusable] = {}
        self.marking: list[bytes] = []  # blob keys of folded manifests, as pack() makes them
        self.table: Digests | None = None  # with fold: the manifests prefetched
        self.extra: list[str] = []  # with fold: the manifests read outside the table

    def prefetch(self, digests: Iterable[str], progress: Progress | None = None,
                 processes: int = 1, meanwhile: Callable[[], Digests] | None = None) -> None:
        """Read and parse ``digests`` ahead of :meth:`get`, in ``jobs`` threads and, on a
        store that forked processes can read (``Store.forkable``), in ``processes``
        processes: parsing is Python work that threads cannot spread over cores.

        ``meanwhile`` runs in this process while the others read (first, without them): a
        blob listing, which it returns, the set this cache asks from then on. The manifests
        are then read whether listed or not, and those the listing lacks are made missing
        afterwards, as if they had not been read.

        A folding cache prefetches once: ``digests``, best a :class:`Digests`, become
        :attr:`table`."""
        if self.fold:
            self._prefetch_table(digests, progress, processes, meanwhile)
            return
        todo = sorted(d for d in set(digests) if d not in self.loaded)
        if processes > 1 and self.store.forkable:
            # A process that took the parent's strings (the repositories' revisions) would
            # write to their pages by taking a reference, and a page written by either
            # process is copied: the revisions' 30 MB of pages twice at a million blobs.
            loaded = self._read_forked(packed_copy(todo), len(todo), processes, meanwhile)
            # A manifest read though the listing lacks it is made missing; keys it folded
            # stay marked (more kept, never less), and so do those of its slice.
            gone = set(self.blobs.missing(todo)) if meanwhile is not None else set()
            self._keep(todo, loaded, gone)
            if progress:
                progress(len(todo))
        else:
            if meanwhile is not None:
                self.blobs = meanwhile()
            self._load_all(todo, progress)

    def _prefetch_table(self, digests: Iterable[str], progress: Progress | None,
                        processes: int, meanwhile: Callable[[], Digests] | None) -> None:
        """:meth:`prefetch` for a folding cache: the digests read from their packed table,
        made strings a slice at a time by the process that reads them (the table is read,
        not written, by a child: none of its pages is copied)."""
        if self.table is not None:
            raise ValueError("a folding cache prefetches once")
        table = self.table = digests if isinstance(digests, Digests) else \
            Digests.merged([digests])
        if processes > 1 and self.store.forkable:
            loaded = self._read_forked(table.strings, len(table), processes, meanwhile)
            self._keep(table, loaded, self._not_listed(table) if meanwhile else ())
            if progress:
                progress(len(table))
        else:
            if meanwhile is not None:
                self.blobs = meanwhile()
            self._load_all(table.strings(0, len(table)), progress)

    def _read_forked(self, strings: Callable[[int, int], list[str]], n: int, processes: int,
                     meanwhile: Callable[[], Digests] | None) -> list[Parsed | Unusable | None]:
        """What :meth:`_load_all` gives for the ``n`` digests that ``strings(start, stop)``
        makes, read in ``processes`` processes; ``meanwhile`` (see :meth:`prefetch`) here,
        its listing the cache's from then on."""
        listed, listings = self.blobs, []
        if meanwhile is not None:
            self.blobs = None  # the other processes read every manifest
        pools = PoolPerProcess(self.jobs, self.store.waits)

        def share(part: range) -> Shipment:
            # Into the cache here, once all is back: a child that kept what it read held its
            # share of the manifests to the end (25 MB at a million blobs). The keys folded
            # in the part as one chunk, large enough to be a mapping of its own: let go as
            # the mark's keys are joined (DigestKeys(consume=True)).
            return Shipment(_one_folded(self._load_all(strings(part.start, part.stop),
                                                       pool=pools.get(), keep=False)))

        try:
            listing = (lambda: listings.append(meanwhile())) if meanwhile else None
            return fork_map(share, range(n), processes, listing)
        finally:
            self.blobs = listings[0] if listings else listed
            pools.close()

    def _not_listed(self, table: Digests) -> list[str]:
        """Those of ``table`` the blob listing lacks, looked up a slice of strings at a time."""
        assert self.blobs is not None
        step = 1 << 14
        return [d for start in range(0, len(table), step)
                for d in self.blobs.missing(table.strings(start, start + step))]

    def _load_all(self, todo: list[str], progress: Progress | None = None,
                  pool: IOPool | None = None,
                  keep: bool = True) -> list[Parsed | Unusable | None]:
        """Load ``todo`` in ``pool`` (one of its own, closed after, when not given); with
        ``keep``, into the cache as each slice is read."""
        # One task per slice, not per manifest: a future per small file costs more than
        # reading it. Slices are small enough to keep every thread busy to the end.
        size = max(64, len(todo) // (self.jobs * 8) + 1)
        slices = [todo[i:i + size] for i in range(0, len(todo), size)]
        loaded: list[Parsed | Unusable | None] = []
        # Which are not listed, all at once: a lookup each in the packed listing costs more.
        gone = set(self.blobs.missing(todo)) if self.blobs is not None else set()

        def load(part: list[str]) -> list[Parsed | Unusable | None]:
            outcome = [self._load(d, d not in gone) for d in part]
            return self._folded(outcome) if self.fold else outcome

        own = pool is None
        pool = IOPool(self.jobs if len(slices) > 1 else 1, self.store.waits) if own else pool
        try:
            for part, outcome in zip(slices, pool.imap(load, slices)):
                if keep:
                    self._keep(part, outcome)
                if progress:
                    progress(len(part))
                loaded += outcome
        finally:
            if own:
                pool.close()
        return loaded

    @staticmethod
    def _folded(outcome: list[Parsed | Unusable]) -> list[Parsed | Unusable | None]:
        """``outcome`` with the keys of its image manifests joined into one :class:`_Folded`
        at the first of them and None at the others."""
        first = -1
        keys: list[bytes] = []
        for i, x in enumerate(outcome):
            if type(x) is bytes:
                keys.append(x)
                outcome[i] = None  # type: ignore[call-overload]
                first = i if first < 0 else first
        if first >= 0:
            outcome[first] = _Folded(b"".join(keys))
        return outcome  # type: ignore[return-value]

    def _keep(self, digests: list[str] | Digests, outcome: list[Parsed | Unusable | None],
              gone: Iterable[str] = ()) -> None:
        """Put what was read of ``digests`` in the cache; those in ``gone`` (some of
        ``digests``) as missing. Folding, what was folded stays out of :attr:`loaded`."""
        if self.fold:
            self.marking += [x for x in outcome if type(x) is _Folded]
            self.loaded.update((digests[i], x) for i, x in enumerate(outcome)
                               if x is not None and type(x) is not _Folded)
        else:
            self.loaded.update(zip(digests, outcome))
        for digest in gone:
            self.loaded[digest] = self._load(digest, False)

    def get(self, digest: str) -> Parsed | Unusable:
        m = self.loaded.get(digest)
        if m is None:
            if self.table is not None:
                if digest in self.table:
                    return FOLDED  # prefetched, and its keys went to the mark as it was read
                self.extra.append(digest)
            m = self.loaded[digest] = self._load(digest)
        return m

    def manifests(self) -> Mapping[str, Parsed | Unusable]:
        """Every manifest read, as :meth:`get` answers for it."""
        return self.loaded if self.table is None else _ReadAhead(self.loaded, self.table)

    def _load(self, digest: str, listed: bool | None = None) -> Parsed | Unusable:
        """Read and parse ``digest``; ``listed``: whether the blob listing has it, when the
        caller knows (else it is looked up)."""
        if listed is None:
            listed = self.blobs is None or digest in self.blobs
        if not listed:
            return NOT_LISTED
        try:
            data = self.store.read(layout.blob_data(digest), MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            if self.blobs is None and stat_quietly(self.store, layout.blob_dir(digest)) is None:
                return NOT_LISTED  # as a listing would have it
            return Unusable("missing", "its blob directory has no data file")
        except StoreError as exc:
            if "larger than" in exc.message:
                return Unusable("invalid", f"{exc.message}, larger than any real manifest")
            return Unusable("unreadable", exc.message)
        try:
            if self.full:
                return parse_manifest(data, digest)
            refs = parse_references(data, digest)
        except ManifestError as exc:
            return Unusable("invalid", str(exc))
        # A tuple the less for each of a million-blob store's 200k image manifests.
        return refs.blob_keys if not refs.children and refs.subject is None else refs


class _ReadAhead(Mapping[str, "Parsed | Unusable"]):
    """The manifests a folding cache read: those it keeps, and :data:`FOLDED` for the others
    of its table."""

    def __init__(self, loaded: dict[str, Parsed | Unusable], table: Digests) -> None:
        self._loaded, self._table = loaded, table

    def __getitem__(self, digest: str) -> Parsed | Unusable:
        m = self._loaded.get(digest)
        if m is None:
            if digest not in self._table:
                raise KeyError(digest)
            return FOLDED
        return m

    def __iter__(self) -> Iterator[str]:
        yield from self._loaded
        yield from (d for d in self._table if d not in self._loaded)

    def __len__(self) -> int:
        return len(self._loaded) + sum(d not in self._loaded for d in self._table)


def mark(store: Store, inventory: Inventory, delete_untagged: bool, jobs: int = 8,
         progress: Progress | None = None, protect_since: float | None = None,
         processes: int = 1, full: bool = True,
         list_blobs: Callable[[], object] | None = None, keep_live: bool = True,
         sift_blobs: Callable[[DigestKeys, Digests, list[str]], list[str]] | None = None
         ) -> MarkResult:
    """Mark every blob reachable from a live manifest of any repository of ``inventory``.

    Reads each manifest blob once (in ``jobs`` threads of each of ``processes`` processes),
    whatever number of repositories link it. ``progress`` is called with the number of
    manifests read. With ``protect_since`` (a time), an untagged revision whose link was
    written at or after it is live too: it may be the child of an index whose push is still
    under way. Without ``full``, ``MarkResult.manifests`` holds only each manifest's
    :class:`References`, or only its blobs' keys where it has nothing else (all a sweep needs);
    and, when every revision is live (without ``delete_untagged``), :data:`FOLDED` for an image
    manifest of a revision, whose keys went to the mark as it was read.

    An inventory taken without its blob listing comes with ``list_blobs``, which makes it:
    here, while other processes read the manifests. Without ``keep_live``,
    ``MarkResult.live`` stays empty.

    Or, for a gc without -m (not ``full``, not ``keep_live``), ``sift_blobs`` makes it once
    the mark is done (:func:`regstore.inventory.sift_blobs`): from the marked keys, the
    manifests read (a :class:`Digests`) and the others read, it keeps only what is unmarked
    and says which manifests read it lacks, made missing here as the listing made during
    the mark would have them.
    """
    if sift_blobs is not None:
        if full or delete_untagged or keep_live or list_blobs is not None or \
                inventory.blobs_listed:
            raise ValueError("a blob listing sifted by the mark is for a gc without -m, of "
                             "an inventory taken without its blob listing")
        return _mark_then_sift(store, inventory, jobs, progress, processes, sift_blobs)
    if delete_untagged and not inventory.tag_history:
        raise ValueError("a mark with delete_untagged needs the tags' history in the inventory")
    if inventory.blobs_listed == (list_blobs is not None):
        raise ValueError("a mark needs the inventory's blob listing, made or to be made")
    def listing() -> Digests:
        assert list_blobs is not None
        list_blobs()
        return inventory.blobs

    # Without -m every revision is live: the keys of what is prefetched can be marked as read.
    fold = not full and not delete_untagged
    cache = ManifestCache(store, inventory.blobs if list_blobs is None else None, jobs, full,
                          fold=fold)
    repositories = inventory.repositories.values()
    # Folding, the revisions are prefetched from their packed table (a compact inventory's
    # are packed already): no string is made for each beforehand.
    cache.prefetch(Digests.merged(r.revisions for r in repositories) if fold else
                   (d for r in repositories for d in r.revisions), progress,
                   processes, listing if list_blobs is not None else None)
    # Read after any blob listing: a problem found there stops a sweep as well.
    result = MarkResult(problems=list(inventory.blocking), delete_untagged=delete_untagged)
    young: dict[str, set[str]] = {}
    if delete_untagged and protect_since is not None:
        young = _young_revisions(store, inventory, protect_since, jobs, processes)
    marking = cache.marking
    for repo in repositories:
        if fold and not keep_live:
            _mark_folded_repository(repo, cache, result, marking)
        else:
            _mark_repository(repo, cache, result, marking, delete_untagged,
                             young.get(repo.name, set()), keep_live)
    if cache.table is not None:
        marking.append(cache.table.packed_keys())  # every revision is live: its own digest
    result.marked = DigestKeys(marking, consume=True)
    result.manifests = cache.manifests()
    return result


def _mark_then_sift(store: Store, inventory: Inventory, jobs: int, progress: Progress | None,
                    processes: int,
                    sift: Callable[[DigestKeys, Digests, list[str]], list[str]]) -> MarkResult:
    """:func:`mark` with ``sift_blobs``: every manifest read (none is known absent yet), the
    mark made, then the blob listing sifted by it."""
    cache = ManifestCache(store, None, jobs, full=False, fold=True)
    repositories = inventory.repositories.values()
    cache.prefetch(Digests.merged(r.revisions for r in repositories), progress, processes)
    assert cache.table is not None
    result = MarkResult()
    marking = cache.marking
    for repo in repositories:
        _mark_folded_repository(repo, cache, result, marking)
    marking.append(cache.table.packed_keys())
    result.marked = DigestKeys(marking, consume=True)
    lacking = sift(result.marked, cache.table, cache.extra)
    # A manifest read, then not listed, is missing: the problems are those of a mark whose
    # listing lacked it (what it referenced stays marked: more kept, never less).
    if any(cache.loaded.get(d) != NOT_LISTED for d in lacking):
        cache.loaded.update(dict.fromkeys(lacking, NOT_LISTED))
        result.problems = []
        for repo in repositories:
            _mark_folded_repository(repo, cache, result, [])
    # After the blob listing: a problem found there stops a sweep as well.
    result.problems[:0] = inventory.blocking
    result.manifests = cache.manifests()
    return result


def _young_revisions(store: Store, inventory: Inventory, since: float, jobs: int,
                     processes: int) -> dict[str, set[str]]:
    """Per repository, the untagged revisions whose link was written at or after ``since``,
    or whose age is unknown (kept as if young). Only an untagged revision can be young and
    otherwise dead: a tag keeps the rest."""
    ages: dict[tuple[str, str], float | None] = {}
    unlisted: list[tuple[str, str]] = []
    for repo in inventory.repositories.values():
        tagged = {t.current for t in repo.tags.values()}
        for digest in repo.revisions - tagged:
            listed = repo.revision_mtimes.get(digest)  # from the listing, where it gave them
            if listed is not None:
                ages[repo.name, digest] = listed
            else:
                unlisted.append((repo.name, digest))
    stats = stat_many(store, [layout.revision_link(*r) for r in unlisted], jobs, processes)
    ages.update((r, st.mtime if st is not None else None) for r, st in zip(unlisted, stats))
    young: dict[str, set[str]] = {}
    for (name, digest), when in ages.items():
        if when is None or when >= since:
            young.setdefault(name, set()).add(digest)
    return young


def _roots(repo: Repository, delete_untagged: bool) -> set[str]:
    tagged = {t.current for t in repo.tags.values() if t.current}
    # Tag targets are roots in both modes: a tag that points at a manifest whose revision
    # link is gone still names something an operator wants kept. A tag whose current link is
    # unusable may point at anything it ever held: keep all of its history.
    for tag in repo.tags.values():
        if tag.bad_link:
            tagged |= tag.index & repo.revisions
    return tagged if delete_untagged else tagged | repo.revisions


def _mark_folded_repository(repo: Repository, cache: ManifestCache, result: MarkResult,
                            marking: list[bytes]) -> None:
    """:func:`_mark_repository` without -m, on a folding cache that prefetched every
    revision: each revision is live, and one whose manifest was folded has nothing left to
    follow (its blobs' keys went to the mark as it was read; its own key goes with every
    revision's, :meth:`Digests.packed_keys`). What is walked is the rest: the revisions the
    cache kept (indexes, referrers, manifests it could not use) and the tags' targets that
    are not revisions here."""
    revisions = set(repo.revisions)  # strings, of this repository only
    loaded = cache.loaded
    roots = {d for d in revisions if d in loaded}
    # A tag whose link is unusable keeps its history: revisions, all live already.
    roots.update(t.current for t in repo.tags.values()
                 if t.current and (t.current not in revisions or t.current in loaded))
    for signatures in repo.signatures.values():  # each under a revision: all live
        marking.append(pack(signatures))
    _mark_repository(repo, cache, result, marking, False, keep_live=False, roots=roots,
                     folded=revisions.difference(roots))


def _mark_repository(repo: Repository, cache: ManifestCache, result: MarkResult,
                     marking: list[bytes], delete_untagged: bool,
                     young: set[str] = frozenset(), keep_live: bool = True,
                     roots: set[str] | None = None,
                     folded: AbstractSet[str] = frozenset()) -> None:
    """Mark what ``repo``'s live manifests reach: their own digests, their signatures and the
    keys of their blobs go into ``marking``, the parts of ``result.marked`` to come.

    ``roots``, where the caller knows them, are where the walk starts; ``folded``, live
    manifests with nothing to follow, where it stops (see :func:`_mark_folded_repository`)."""
    referrers: dict[str, list[str]] = defaultdict(list)
    if delete_untagged:
        for digest in repo.revisions:
            m = cache.get(digest)
            if not isinstance(m, Unusable) and (subject := _references(m).subject) is not None:
                referrers[subject].append(digest)
    live: set[str] = set()
    roots = _roots(repo, delete_untagged) if roots is None else roots
    if young - roots:
        result.young[repo.name] = young - roots
    queue = list(roots | young)
    chain: dict[str, str] = {}  # child -> the index that made it live, for messages
    while queue:
        digest = queue.pop()
        if digest in live:
            continue
        live.add(digest)
        if signatures := repo.signatures.get(digest):
            marking.append(pack(signatures))  # 2.4's GC kept these; when in doubt, keep
        if digest in folded:
            continue
        m = cache.get(digest)
        if isinstance(m, Unusable):
            if m.reason == "missing" and digest not in repo.revisions and digest not in chain:
                # A tag pointing at nothing at all (distribution#3899): nothing to protect.
                result.problems.append(_dangling_tag(repo, digest))
            else:
                result.problems.append(_live_problem(repo, digest, m, chain.get(digest)))
            continue
        refs = _references(m)
        marking.append(refs.blob_keys)
        for child in refs.children:
            chain.setdefault(child, digest)
            queue.append(child)
        queue.extend(referrers.get(digest, ()))
    if keep_live:
        result.live[repo.name] = live
    marking.append(pack(live))
    if delete_untagged:
        _classify_untagged(repo, cache, result, live)


def _references(m: Parsed) -> References:
    """What marking follows of a manifest, whether the cache kept it whole or not."""
    if type(m) is bytes:
        return References(m, (), None)
    return m if isinstance(m, References) else m.references()


def _classify_untagged(repo: Repository, cache: ManifestCache, result: MarkResult,
                       live: set[str]) -> None:
    dead, doubt = set(), set()
    for digest in repo.revisions - live:
        m = cache.get(digest)
        if not isinstance(m, Unusable) or m.reason == "missing":
            dead.add(digest)
        elif m.reason == "unreadable":
            # It may be a referrer of a live image: its subject is unknown, so is what is live.
            result.problems.append(Finding(
                "unreadable-manifest", ERROR,
                f"untagged manifest cannot be read ({m.detail}); it may be a referrer of a live "
                "image, so nothing will be swept: fix the permissions or the disk",
                digest=digest, repository=repo.name, key=layout.blob_data(digest)))
            doubt.add(digest)
        else:
            result.problems.append(Finding(
                "invalid-manifest", WARNING,
                f"untagged revision is not a manifest regstore understands ({m.detail}); "
                "its revision link is kept", digest=digest, repository=repo.name,
                key=layout.blob_data(digest)))
            doubt.add(digest)
    result.dead[repo.name] = dead
    if doubt:
        result.kept_in_doubt[repo.name] = doubt


def _live_problem(repo: Repository, digest: str, m: Unusable, parent: str | None) -> Finding:
    tags = sorted(t.name for t in repo.tags.values() if t.current == digest)
    images = tuple(f"{repo.name}:{t}" for t in tags) or (f"{repo.name}@{digest}",)
    via = f" (a child of {parent})" if parent else ""
    what = {"missing": "is missing", "unreadable": "cannot be read",
            "invalid": "is not a manifest regstore understands"}[m.reason]
    return Finding(
        f"{m.reason}-manifest" if m.reason != "missing" else "missing-manifest", ERROR,
        f"live manifest{via} {what} ({m.detail}); what it references is unknown, so nothing "
        "will be swept. Restore the blob (re-push the image), or delete the manifest through "
        "the registry's API, or run with --ignore-broken-manifests to sweep anyway",
        digest=digest, repository=repo.name, key=layout.blob_data(digest), images=images)


def _dangling_tag(repo: Repository, digest: str) -> Finding:
    tags = sorted(t.name for t in repo.tags.values() if t.current == digest)
    return Finding(
        "dangling-tag", WARNING,
        f"tag points at {digest}, which has neither a revision link nor a blob; pulls of it "
        "fail with 'manifest unknown': re-push the image or delete the tag",
        digest=digest, repository=repo.name, images=tuple(f"{repo.name}:{t}" for t in tags))


def late_references(store: Store, inventory: Inventory, since: float,
                    jobs: int = 8) -> Callable[[set[str]], set[str]]:
    """A re-check for a sweep under way: which of some digests the repositories need now.

    Each call lists the repositories again (without the tags' histories, and compact if
    ``inventory`` is), one at a time (:func:`regstore.inventory.each_repository`), and keeps,
    of the digests asked about, every one that is linked into a repository anew or by a link
    written at or after ``since``, and every one reachable from a revision or tag target that
    was not in ``inventory``. A new manifest that cannot be understood, or a part of the store
    that cannot be listed now, keeps every digest asked about: when in doubt, keep.

    One process lists them, a repository at a time: a real sweep of a million-blob store
    peaks at 161 MB, where whole listings took it to 240 MB. (Two processes had taken longer
    and more memory: 8.4-8.8 s and 246-307 MB for the whole gc against 7.6-7.8 s and 205 MB,
    with whole listings.)"""
    def needed(digests: set[str]) -> set[str]:
        keep: set[str] = set()
        asked = DigestKeys.of(digests)
        by_key: dict[int, list[str]] = {}
        for digest in digests:
            by_key.setdefault(DigestKeys.key_of(digest), []).append(digest)
        with closing(each_repository(store, jobs, tag_history=False,
                                     compact=inventory.compact)) as now:
            for repo in now:
                if isinstance(repo, Finding):
                    if repo.severity == ERROR:
                        return set(digests)
                    continue
                if not _keep_late(store, inventory, repo, digests, asked, by_key, since, jobs,
                                  keep):
                    return set(digests)
        return keep

    return needed


def _keep_late(store: Store, inventory: Inventory, repo: Repository, digests: set[str],
               asked: DigestKeys, by_key: dict[int, list[str]], since: float, jobs: int,
               keep: set[str]) -> bool:
    """Add to ``keep`` those of ``digests`` that ``repo``, listed now, needs since
    ``inventory`` was taken (:func:`late_references`); False if a manifest new in it cannot
    be understood, and every digest must be kept."""
    before = inventory.repositories.get(repo.name) or Repository(repo.name)
    # Where the links are known by their keys only, a digest asked about whose key is
    # linked counts as linked: more kept, never less.
    linked = digests.intersection(repo.layers) if isinstance(repo.layers, Digests) \
        else {d for key in asked.common(repo.layers) for d in by_key[key]}
    for digest in linked:
        # Where the inventory kept the links' keys only, a new link sharing the key of one
        # before is still kept if it was written since.
        if digest not in before.layers or _written_since(
                store, layout.layer_link(repo.name, digest), since,
                repo.layer_mtimes.get(digest)):
            keep.add(digest)
    known_targets = {t.current for t in before.tags.values()}
    new = (repo.revisions - before.revisions) | \
        {t.current for t in repo.tags.values() if t.current} - known_targets
    if new:
        fresh = Repository(repo.name, revisions=new)
        late, marking = MarkResult(), []
        cache = ManifestCache(store, None, jobs, full=False)
        _mark_repository(fresh, cache, late, marking, False)
        if not late.complete:
            return False
        keep |= digests.difference(DigestKeys(marking).missing(digests))
    return True


def _written_since(store: Store, key: str, since: float, listed: float | None = None) -> bool:
    if listed is not None:  # the fresh listing gave its mtime
        return listed >= since
    try:
        st = store.stat(key)
    except StoreError:
        return True  # unknown age: treat as new
    return st is not None and st.mtime >= since
