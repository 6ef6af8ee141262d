"""What a store holds: repositories, their revisions, tags and layer links, and the blobs.

The inventory is one linear pass over the tree. The digest of a revision or layer link is the
name of its directory, so those link files are not read here (verify reads them); only tag
``current`` links are, since their content is the point. Problems that leave regstore unable to
know what is live (an unreadable subtree, a repository directory it cannot name) go to
``blocking``: a mark built on such an inventory is incomplete and no sweep may follow.

Listing runs in ``jobs`` threads over independent parts of the tree: the directories of the
repositories tree level by level, then each repository, and each ``blobs/<alg>/<xx>`` prefix
(once the store makes it wait: :mod:`regstore.pool`).
The answer is the same as a sequential pass, finding for finding and in the same order: the
listings are made in parallel, the results are taken in the order a sequential pass takes them.
Where the store walks a directory as cheaply as it lists it (``Store.flat_walk``: an object
store's flat listing), blob prefixes and layer links are walked, and the sizes and times that
come with such a listing are kept (``Inventory.blob_stats``, ``Repository.layer_mtimes``,
``Repository.revision_mtimes``) so that nobody asks the store for them one object at a time.
"""

from __future__ import annotations

import hashlib
import sys
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any, Callable, Iterable, Iterator, Mapping

from regstore import layout
from regstore.digestsets import DigestColumn, DigestKeys, Digests, DigestsJoin, DigestTuple
from regstore.findings import ERROR, HINT, WARNING, Finding, printable
from regstore.pool import IOPool, PoolPerProcess, fork_map
from regstore.store.base import DirEntry, FileEntry, Stat, Store, StoreError

Progress = Callable[[int], None]

_REPO_PARTS = ("_manifests", "_layers", "_uploads")


# The index of a tag with no history listed: one shared empty set, not one per tag (a store
# has a tag for every ten blobs, and an empty set is 216 bytes).
_NO_HISTORY: frozenset[str] = frozenset()


@dataclass(slots=True)
class Tag:
    """A tag: where ``current`` points (None if its link is absent or unreadable) and the
    digests its index holds."""

    name: str  # its directory is layout.tags_dir(repository) + "/" + name
    current: str | None = None
    index: set[str] | frozenset[str] = _NO_HISTORY
    valid_name: bool = True
    bad_link: bool = False  # current exists but does not hold a digest

    def held(self, digest: str) -> None:
        """Note that the tag's index holds ``digest``."""
        if not isinstance(self.index, set):
            self.index = set(self.index)
        self.index.add(digest)


class TagTable(Mapping[str, Tag]):
    """A repository's tags as a compact inventory keeps them once listed: their names joined
    in one string and where each points packed (:class:`regstore.digestsets.DigestColumn`), a
    :class:`Tag` made anew at each access; only a tag with more to say (a history, an invalid
    name, an unusable link) kept whole. A tag object, its name and its place in a dict took
    about 170 bytes, 22 MB for the 128k tags of a million-blob store, its target's string
    120 more where the revisions no longer share it; here about 70 bytes in all (12.7k tags
    of the 100k store: 0.86 MB). Read-only: the tags are listed into a dict first."""

    __slots__ = ("_names", "_currents", "_whole")

    def __init__(self, tags: dict[str, Tag]) -> None:
        # "/" is in no name: each is a directory's (or, on S3, a key's part between two)
        self._names = "/".join(tags)
        self._currents = DigestColumn([t.current for t in tags.values()])
        self._whole = {name: t for name, t in tags.items()
                       if t.index or not t.valid_name or t.bad_link} or None

    def _tags(self) -> list[Tag]:
        if not self._currents:
            return []
        whole = self._whole or {}
        return [whole.get(name) or Tag(name, current)
                for name, current in zip(self._names.split("/"), self._currents.tolist())]

    def values(self) -> list[Tag]:  # type: ignore[override]
        return self._tags()

    def items(self) -> list[tuple[str, Tag]]:  # type: ignore[override]
        return [(t.name, t) for t in self._tags()]

    def __getitem__(self, name: str) -> Tag:
        for tag in self._tags():
            if tag.name == name:
                return tag
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter([t.name for t in self._tags()])

    def __len__(self) -> int:
        return len(self._currents)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # To another process as it is held (a forked scan's), not as a tag object each.
        return (_table, (self._names, self._currents, [_tag_fields(t) for t in
                                                       (self._whole or {}).values()]))


def _tag_fields(tag: Tag) -> tuple[Any, ...]:
    return tag.name, tag.current, tag.index, tag.valid_name, tag.bad_link


def _arrived(name: str, current: str | None, index: set[str] | frozenset[str], valid: bool,
             bad: bool) -> Tag:
    """A tag from another process, its digests the interpreter's shared strings again."""
    intern = sys.intern
    return Tag(name, current and intern(current), set(map(intern, index)) if index else index,
               valid, bad)


def _table(names: str, currents: DigestColumn, whole: list[tuple[Any, ...]]) -> TagTable:
    table = TagTable.__new__(TagTable)
    table._names = names
    table._currents = currents
    table._whole = {fields[0]: _arrived(*fields) for fields in whole} or None
    return table


@dataclass(slots=True)
class Repository:
    name: str
    # A set while the repository is listed, then its sorted tuple (regstore.digestsets): at a
    # million blobs the sets' tables took 23 MB for 239k revisions, the tuples take 2 MB; in
    # a compact inventory packed (Digests), 32 bytes a revision where its string took 120.
    revisions: set[str] | DigestTuple | Digests = field(default_factory=set)
    # revision -> signature blobs linked under it (stores first written by registry 2.0-2.4)
    signatures: dict[str, set[str]] = field(default_factory=dict)
    tags: dict[str, Tag] | TagTable = field(default_factory=dict)  # a table once compacted
    # The digests linked in _layers, packed (regstore.digestsets): 32 bytes a link, where a
    # string per digest took 120 and more (1.4M links at 1M blobs); or, in a compact
    # inventory, only their keys, 8 bytes a link.
    layers: Digests | DigestKeys = field(default_factory=Digests)
    uploads: list[str] = field(default_factory=list)
    has_tags_dir: bool = False
    # link mtimes, where the listing gave them for free (see the module docstring)
    layer_mtimes: dict[str, float] = field(default_factory=dict)
    revision_mtimes: dict[str, float] = field(default_factory=dict)


@dataclass
class Inventory:
    repositories: dict[str, Repository] = field(default_factory=dict)
    blobs: Digests = field(default_factory=Digests)  # packed, as each repository's layers
    findings: list[Finding] = field(default_factory=list)
    blocking: list[Finding] = field(default_factory=list)
    # Where the blob listing gave them (flat walks): each blob's data size and mtime, and the
    # keys of entries in blob directories other than their data (None: not listed so).
    blob_stats: dict[str, Stat] | None = None
    blob_strays: dict[str, list[str]] = field(default_factory=dict)
    # Whether each tag's index was listed (Tag.index); without it, Tag.index is empty.
    tag_history: bool = True
    # Whether ``blobs`` (and blob_stats, blob_strays) hold the blob listing yet: False from
    # take_inventory(blobs=False) until list_blobs() has run.
    blobs_listed: bool = True
    # Where the blob listing was sifted by a mark's keys (sift_blobs): ``blobs`` holds only
    # the blobs whose keys they lack, ``blob_count`` says how many were listed in all.
    blob_count: int | None = None
    sifted_by: DigestKeys | None = None
    # Whether each repository's layers are its links' keys only (DigestKeys), not Digests,
    # its revisions packed (Digests) and its tags a TagTable (take_inventory(compact=True)).
    compact: bool = False

    def note(self, finding: Finding) -> None:
        (self.blocking if finding.severity == ERROR else self.findings).append(finding)


class _Notes:
    """Findings and progress of one part of the tree, collected in a worker thread and
    replayed into the inventory in sequential order."""

    def __init__(self) -> None:
        self.notes: list[Finding] = []
        self.ticks = 0

    def note(self, finding: Finding) -> None:
        self.notes.append(finding)

    def tick(self, n: int) -> None:
        self.ticks += n

    def replay(self, inv: Inventory, tick: Progress) -> None:
        for finding in self.notes:
            inv.note(finding)
        tick(self.ticks)


def take_inventory(store: Store, progress: Progress | None = None, jobs: int = 1,
                   processes: int = 1, tag_history: bool = True,
                   blobs: bool = True, compact: bool = False) -> Inventory:
    """List every repository and blob of ``store`` into an :class:`Inventory`, in ``jobs``
    threads and, on a store that can be read from forked processes (``Store.forkable``), with
    the repositories shared among ``processes`` processes (the result does not depend on
    either number).

    ``progress`` is called with a count of entries seen, for a progress bar. Without
    ``tag_history`` the index of each tag (which manifests it held before) is not listed, two
    of the three listings a tag costs: a gc without -m marks every revision whatever the
    tags held, and needs only where each tag points now. Without ``blobs`` the blob listing
    is left to :func:`list_blobs`, to be made once the repositories are listed (a gc makes it
    while other processes read the manifests).

    With ``compact``, what a gc needs is kept in less memory, read-only: each repository's
    layer links as their keys (:class:`regstore.digestsets.DigestKeys`, 8 bytes a link where
    their exact digests take 32; a gc names the links it removes by listing their repository
    again, regstore.sweep), its revisions packed (a :class:`regstore.digestsets.Digests`,
    whose strings are made as they are iterated) and its tags as a :class:`TagTable`.
    """
    inv = Inventory(tag_history=tag_history, blobs_listed=blobs, compact=compact)
    tick = progress or (lambda n: None)
    pool, reads = IOPool(jobs, store.waits), IOPool(jobs, store.waits)
    if not store.forkable:
        processes = 1
    try:
        # Repositories first, blobs after: the registry writes a blob before any link to it,
        # so every link this listing sees has its blob in the later one, even while pushes
        # go on (listed the other way round, a manifest pushed in between looks missing).
        _scan_repositories(store, inv, tick, pool, reads, processes, tag_history, compact)
        if blobs:
            _scan_blobs(store, inv, tick, pool)
    finally:
        pool.close()
        reads.close()
    return inv


def list_blobs(store: Store, inv: Inventory, progress: Progress | None = None,
               jobs: int = 1) -> None:
    """Make the blob listing of an inventory taken without it (``take_inventory(blobs=
    False)``), after its repositories: in that order, every link listed has its blob listed
    too, even while pushes go on."""
    if inv.blobs_listed:
        raise ValueError("the inventory has its blob listing already")
    pool = IOPool(jobs, store.waits)
    try:
        _scan_blobs(store, inv, progress or (lambda n: None), pool)
    finally:
        pool.close()
    inv.blobs_listed = True


def each_repository(store: Store, jobs: int = 1, tag_history: bool = True,
                    compact: bool = False) -> Iterator[Repository | Finding]:
    """The repositories of ``store`` one at a time, each once scanned, and the findings of
    the scan (the tree's first, a repository's just before it), in one process, for
    re-checks: what one repository holds is let go once the caller has looked at it (a
    million-blob store's repositories listed whole took 80 MB on top of the gc's own). The
    arguments as :func:`take_inventory`'s, and the same repositories and findings as it
    lists."""
    pool, reads = IOPool(jobs, store.waits), IOPool(jobs, store.waits)
    try:
        found: list[tuple[str, dict[str, str]]] = []
        for event in _walk_repository_tree(_list_repository_tree(store, pool)):
            if isinstance(event, Finding):
                yield event
            elif isinstance(event, tuple):
                found.append(event)

        def scan(item: tuple[str, dict[str, str]]) -> tuple[Repository, _Notes]:
            repo = Repository(item[0])
            return repo, _scan_repository(store, repo, item[1], reads, tag_history, compact)

        for repo, notes in pool.imap(scan, found):
            yield from notes.notes
            yield repo
    finally:
        pool.close()
        reads.close()


def _unreadable(exc: StoreError, what: str) -> Finding:
    return Finding("unreadable", ERROR,
                   f"cannot read {what} ({exc.message}); regstore cannot know what it "
                   "references, so nothing will be swept: fix the permissions or the disk",
                   key=exc.key)


def _list_repository_tree(store: Store, pool: IOPool) -> dict[str, list[DirEntry] | StoreError]:
    """Every directory of the repositories tree a sequential pass lists, listed level by level
    in parallel: what it descends into does not depend on what it finds."""
    listed: dict[str, list[DirEntry] | StoreError] = {}

    def listing(key: str) -> list[DirEntry] | StoreError:
        try:
            return store.list_dir(key)
        except StoreError as exc:
            return exc

    level = [layout.REPOSITORIES]
    while level:
        results = pool.map(listing, level)
        following = []
        for key, entries in zip(level, results):
            listed[key] = entries
            if isinstance(entries, StoreError):
                continue
            following += [f"{key}/{e.name}" for e in entries
                          if not e.name.startswith("_") and e.kind == "dir"]
        level = following
    return listed


def _walk_repository_tree(listed: dict[str, list[DirEntry] | StoreError]
                          ) -> Iterator[Finding | int | tuple[str, dict[str, str]]]:
    """The sequential pass over the repositories tree, on its listings: a finding, a count
    of entries seen, or a repository found (its name and what its directory holds), in the
    order a walk meets them."""
    stack: list[tuple[str, str, bool]] = [(layout.REPOSITORIES, "", True)]
    while stack:
        key, name, valid = stack.pop()
        entries = listed[key]
        if isinstance(entries, StoreError):
            yield _unreadable(entries, "a repository directory")
            continue
        yield len(entries)
        kinds = {e.name: e.kind for e in entries}
        if name and any(kinds.get(p) == "dir" for p in _REPO_PARTS):
            if valid:
                yield name, kinds
            else:
                yield Finding(
                    "invalid-repository-name", ERROR,
                    f"repository directory {printable(name)!r} is not a valid repository name; "
                    "the registry cannot serve it and regstore will not guess what it holds: "
                    "rename or remove it, then run again", key=key)
        for entry in entries:
            if entry.name.startswith("_"):
                if name and entry.name in _REPO_PARTS and entry.kind == "dir":
                    continue
                yield Finding("stray-entry", HINT,
                              f"unexpected entry {printable(entry.name)!r} ignored",
                              key=f"{key}/{entry.name}")
            elif entry.kind == "dir":
                child = f"{name}/{entry.name}" if name else entry.name
                ok = valid and layout.is_repository_component(entry.name)
                stack.append((f"{key}/{entry.name}", child, ok))
            elif entry.kind == "symlink":
                yield Finding(
                    "symlink", ERROR, f"symlink {printable(entry.name)!r} in the repositories "
                    "tree is not followed; what it points at cannot be marked, so nothing will "
                    "be swept: replace it by the real directory", key=f"{key}/{entry.name}")
            else:
                yield Finding("stray-entry", HINT,
                              f"unexpected file {printable(entry.name)!r} ignored",
                              key=f"{key}/{entry.name}")


def _scan_repositories(store: Store, inv: Inventory, tick: Progress, pool: IOPool,
                       reads: IOPool, processes: int = 1, history: bool = True,
                       compact: bool = False) -> None:
    listed = _list_repository_tree(store, pool)
    # The pass itself is the sequential one, on the listings made above; each repository
    # found is scanned in the pool (or, with several processes, after the pass, in them), and
    # its findings are replayed where the pass found it.
    # A finding, a progress count, or a repository and its scan.
    events: list[Finding | int | tuple[Repository, Future[_Notes] | _Notes | None]] = []
    forked: list[tuple[Repository, dict[str, str]]] = []  # scanned after the pass

    def submit(repo: Repository, kinds: dict[str, str]) -> Future[_Notes] | None:
        if processes > 1:
            forked.append((repo, kinds))
            return None
        return pool.submit(lambda: _scan_repository(store, repo, kinds, reads, history,
                                                    compact))

    for event in _walk_repository_tree(listed):
        if isinstance(event, tuple):
            repo = Repository(event[0])
            events.append((repo, submit(repo, event[1])))
        else:
            events.append(event)
    if forked:
        pool.park()  # no thread of it running while processes fork
        pools = PoolPerProcess(reads.jobs, store.waits), PoolPerProcess(reads.jobs, store.waits)
        try:
            scanned = iter(fork_map(lambda part: _scan_part(store, part, *pools, history,
                                                            compact),
                                    forked, processes,
                                    here=len(forked) < SCANNED_AWAY_FROM))
        finally:
            for each in pools:
                each.close()
        events = [next(scanned) if isinstance(e, tuple) else e for e in events]
    for event in events:
        if isinstance(event, tuple):
            repo, outcome = event
            inv.repositories[repo.name] = repo
            assert outcome is not None
            notes = outcome if isinstance(outcome, _Notes) else outcome.result()
            notes.replay(inv, tick)
        elif isinstance(event, int):
            tick(event)
        else:
            inv.note(event)


#: Repositories from which a scan in several processes is left to forked ones alone: this
#: one's share of it, made between the repositories it keeps, left its memory fragmented by
#: what the scan let go (at a million blobs, 15.9k repositories, 9 MB of the gc's peak; 10
#: ms more at 1.7k, where the interpreter is most of the memory).
SCANNED_AWAY_FROM = 4096


class _Scanned(list):  # type: ignore[type-arg]
    """The (repository, notes) pairs of a chunk scanned in another process, sent back as
    plain tuples and made again by one function: the default pickling of each repository and
    tag (a dataclass with slots) was slower than the strings they hold (a compact inventory's
    revisions and tags go packed, as they are held). On arrival, the digests that come as
    strings are made the interpreter's shared strings again: one that comes back from
    another process holds copies, 120 bytes each, of what the blob listing holds."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_unscanned, ([(
            (r.name, r.revisions if isinstance(r.revisions, Digests) else tuple(r.revisions),
             r.signatures, r.layers, r.uploads, r.has_tags_dir,
             r.layer_mtimes, r.revision_mtimes,
             r.tags if isinstance(r.tags, TagTable) else
             [_tag_fields(t) for t in r.tags.values()]), notes)
            for r, notes in self],))


def _unscanned(items: list[Any]) -> list[tuple[Repository, _Notes]]:
    intern = sys.intern
    return [(Repository(name, revisions if isinstance(revisions, Digests) else
                        DigestTuple(map(intern, revisions)), signatures,
                        tags if isinstance(tags, TagTable) else
                        {fields[0]: _arrived(*fields) for fields in tags},
                        layers, uploads, has_tags_dir, layer_mtimes, revision_mtimes), notes)
            for (name, revisions, signatures, layers, uploads, has_tags_dir, layer_mtimes,
                 revision_mtimes, tags), notes in items]


def _scan_part(store: Store, part: list[tuple[Repository, dict[str, str]]],
               repositories: PoolPerProcess, reads: PoolPerProcess,
               history: bool, compact: bool) -> list[tuple[Repository, _Notes]]:
    """Scan a chunk of the repositories (in a process of :func:`fork_map`), with thread
    pools of this process's own: one for the repositories (on a cold disk each listing waits
    on a seek, and several repositories at once keep the disk busy), one for the tag links
    each repository reads (a pool of its own: a repository's task waits on them)."""
    reading = reads.get()
    return _Scanned(repositories.get().map(
        lambda item: (item[0], _scan_repository(store, *item, reading, history, compact)),
        part))


def _scan_repository(store: Store, repo: Repository, kinds: dict[str, str],
                     reads: IOPool, history: bool = True, compact: bool = False) -> _Notes:
    notes = _Notes()
    base = layout.repository_dir(repo.name)
    if kinds.get("_manifests") == "dir":
        _scan_revisions(store, notes, repo)
        repo.revisions = (Digests if compact else DigestTuple)(repo.revisions)
        _scan_tags(store, notes, repo, reads, history)
    if kinds.get("_layers") == "dir":
        _scan_layers(store, notes, repo)
    if compact:
        repo.layers = DigestKeys.of_digests(repo.layers)  # type: ignore[arg-type]
        repo.tags = TagTable(repo.tags)  # type: ignore[arg-type]
    if kinds.get("_uploads") == "dir":
        try:
            repo.uploads = [e.name for e in store.list_dir(f"{base}/_uploads")]
        except StoreError as exc:
            notes.note(Finding("unreadable", WARNING, f"cannot list uploads ({exc.message})",
                               repository=repo.name, key=exc.key))
    return notes


def _scan_revisions(store: Store, notes: _Notes, repo: Repository) -> None:
    if not store.flat_walk:
        _list_revisions(store, notes, repo)
        return
    top = layout.revisions_dir(repo.name)
    try:
        files = list(store.walk(top))
    except StoreError as exc:
        notes.note(_unreadable(exc, f"the revisions of {repo.name}"))
        return
    notes.tick(len(files))
    for f in files:
        parts = f.key[len(top) + 1:].split("/")
        digest = layout.digest_from_parts(parts[0], parts[1]) if len(parts) >= 3 else None
        if digest and f.kind == "file" and parts[2:] == ["link"]:
            repo.revisions.add(digest)
            if f.mtime is not None:
                repo.revision_mtimes[digest] = f.mtime
            continue
        if digest and f.kind == "file" and len(parts) == 6 and parts[2] == "signatures" \
                and parts[5] == "link":
            signature = layout.digest_from_parts(parts[3], parts[4])
            if signature:
                repo.signatures.setdefault(digest, set()).add(signature)
                continue
        (_symlink_among if f.kind == "symlink" else _stray)(notes, repo, "revisions", f.key)
    # A revision directory that lost its link file is not a revision the registry serves;
    # nothing is inferred from it.


def _symlink_among(notes: _Notes, repo: Repository, what: str, key: str) -> None:
    notes.note(Finding("symlink", ERROR,
                       f"symlink among {what} is not followed; nothing will be swept until it "
                       "is replaced by the real file or directory", repository=repo.name, key=key))


def _stray(notes: _Notes, repo: Repository, what: str, key: str) -> None:
    notes.note(Finding("stray-entry", HINT, f"unexpected entry among {what} ignored",
                       repository=repo.name, key=key))


def _list_revisions(store: Store, notes: _Notes, repo: Repository) -> None:
    """The revisions of ``repo`` from directory listings (stores where a walk costs a listing
    per directory anyway): ``<alg>/<hex>`` directories named by a digest, each listed for its
    ``link`` (and the ``signatures`` of stores written by registry 2.0-2.4). What is not a
    revision directory is named as one entry, not walked into: the registry never looks there.
    """
    top = layout.revisions_dir(repo.name)
    try:
        for alg in store.list_dir(top):
            where = f"{top}/{alg.name}"
            if alg.kind != "dir":
                (_symlink_among if alg.kind == "symlink" else _stray)(notes, repo, "revisions",
                                                                      where)
                continue
            entries = store.list_dir(where)
            notes.tick(len(entries))
            names = [e.name for e in entries]
            for entry, digest in zip(entries, layout.digests_from_names(alg.name, names)):
                key = f"{where}/{entry.name}"
                if entry.kind == "symlink":
                    _symlink_among(notes, repo, "revisions", key)
                elif digest is None or entry.kind != "dir":
                    _stray(notes, repo, "revisions", key)
                else:
                    _list_revision(store, notes, repo, digest, key)
    except StoreError as exc:
        notes.note(_unreadable(exc, f"the revisions of {repo.name}"))


def _list_revision(store: Store, notes: _Notes, repo: Repository, digest: str,
                   key: str) -> None:
    if store.holds_only_file(key, "link"):
        repo.revisions.add(digest)  # nearly every revision: its link and nothing else to see
        return
    for entry in store.list_dir(key):
        inside = f"{key}/{entry.name}"
        if entry.name == "link" and entry.kind == "file":
            repo.revisions.add(digest)
        elif entry.name == "signatures" and entry.kind == "dir":
            for f in store.walk(inside):
                parts = f.key[len(inside) + 1:].split("/")
                signature = layout.digest_from_parts(parts[0], parts[1]) \
                    if len(parts) == 3 and parts[2] == "link" and f.kind == "file" else None
                if signature:
                    repo.signatures.setdefault(digest, set()).add(signature)
                elif f.kind == "symlink":
                    _symlink_among(notes, repo, "revisions", f.key)
                else:
                    _stray(notes, repo, "revisions", f.key)
        elif entry.kind == "symlink":
            _symlink_among(notes, repo, "revisions", inside)
        else:
            _stray(notes, repo, "revisions", inside)


def _scan_tags(store: Store, notes: _Notes, repo: Repository, reads: IOPool,
               history: bool = True) -> None:
    if not store.flat_walk:
        _list_tags(store, notes, repo, reads, history)
        return
    # One walk gives every tag with its history: the history costs nothing extra here.
    top = layout.tags_dir(repo.name)
    try:
        files = list(store.walk(top))
        # An object store has no empty directories: what it walks is what there is.
        repo.has_tags_dir = bool(files) or bool(store.stat(top))
    except StoreError as exc:
        notes.note(_unreadable(exc, f"the tags of {repo.name}"))
        return
    notes.tick(len(files))
    current = [f for f in files if f.kind == "file" and
               f.key[len(top) + 1:].partition("/")[2] == "current/link"]
    contents: dict[str, bytes | Exception] = {}
    history = _tag_histories(files, top)
    for f in current:
        # A link written in one piece has the MD5 of its text as ETag: where that is the MD5
        # of one of the digests the tag's index holds, the link holds that digest, and there
        # is nothing to download (GitLab's pruner skips links the same way).
        known = _implied(f, history.get(f.key[len(top) + 1:].partition("/")[0], ()))
        if known is not None:
            contents[f.key] = known
    unknown = [f.key for f in current if f.key not in contents]
    contents.update(zip(unknown, reads.map(lambda k: _read_link(store, k), unknown)))
    for f in files:
        rel = f.key[len(top) + 1:]
        tag_name, _, rest = rel.partition("/")
        tag = repo.tags.get(tag_name)
        if tag is None:
            tag = repo.tags[tag_name] = Tag(tag_name, valid_name=layout.is_tag(tag_name))
        parts = rest.split("/")
        if parts == ["current", "link"] and f.kind == "file":
            tag.current = _current(contents[f.key], notes, repo, tag, f.key)
            continue
        if len(parts) == 4 and parts[0] == "index" and parts[3] == "link" and f.kind == "file":
            digest = layout.digest_from_parts(parts[1], parts[2])
            if digest:
                tag.held(digest)
                continue
        _stray(notes, repo, "tags", f.key)
    _note_invalid_tag_names(notes, repo)


def _list_tags(store: Store, notes: _Notes, repo: Repository, reads: IOPool,
               history: bool = True) -> None:
    """The tags of ``repo`` from directory listings: each tag directory, its ``current/link``
    (read) and, with ``history``, the names of its ``index/<alg>/<hex>`` entries (not read:
    gc needs only which digests a tag held, and verify reads every index link itself).

    Every directory under ``tags`` is a tag, as the registry's tag list says, even one with
    no ``current`` link (verify reports it: pulls of it fail). Without ``history``, a tag
    whose ``current`` plainly holds its link is not listed: what else its directory holds
    is not looked at (-m and verify list every tag). Likewise a revision directory found to
    hold its link and no subdirectory is not listed for stray files."""
    top = layout.tags_dir(repo.name)
    links: list[tuple[Tag, str]] = []
    try:
        entries = store.list_dir(top)
        repo.has_tags_dir = bool(entries) or bool(store.stat(top))
        notes.tick(len(entries))
        for entry in entries:
            key = f"{top}/{entry.name}"
            tag = repo.tags[entry.name] = Tag(entry.name, valid_name=layout.is_tag(entry.name))
            if entry.kind == "symlink":
                # The registry follows it and serves what it points at: unknown to regstore.
                _symlink_among(notes, repo, "tags", key)
            elif entry.kind != "dir":
                _stray(notes, repo, "tags", key)
            elif not history and store.holds_only_file(f"{key}/current", "link"):
                links.append((tag, f"{key}/current/link"))  # no listing of the tag needed
            else:
                for part in store.list_dir(key):
                    inside = f"{key}/{part.name}"
                    if part.name == "current" and part.kind == "dir":
                        links.append((tag, f"{inside}/link"))
                    elif part.name == "index" and part.kind == "dir":
                        if history:
                            _list_tag_index(store, notes, repo, tag, inside)
                    elif part.kind == "symlink":
                        _symlink_among(notes, repo, "tags", inside)
                    else:
                        _stray(notes, repo, "tags", inside)
    except StoreError as exc:
        notes.note(_unreadable(exc, f"the tags of {repo.name}"))
        return
    contents = reads.map(lambda link: _read_link(store, link[1]), links)
    for (tag, key), content in zip(links, contents):
        tag.current = _current(content, notes, repo, tag, key)
    _note_invalid_tag_names(notes, repo)


def _note_invalid_tag_names(notes: _Notes, repo: Repository) -> None:
    for tag in repo.tags.values():
        if not tag.valid_name:
            notes.note(Finding("invalid-tag-name", WARNING,
                               f"tag directory {printable(tag.name)!r} is not a valid tag name; "
                               "what it points at is kept", repository=repo.name,
                               # not layout.tag_dir, which refuses an invalid tag name
                               key=f"{layout.tags_dir(repo.name)}/{tag.name}"))


def _list_tag_index(store: Store, notes: _Notes, repo: Repository, tag: Tag, top: str) -> None:
    for alg in store.list_dir(top):
        where = f"{top}/{alg.name}"
        entries = store.list_dir(where) if alg.kind == "dir" else []
        if alg.kind != "dir":
            _stray(notes, repo, "tags", where)
        names = [e.name for e in entries]
        for entry, digest in zip(entries, layout.digests_from_names(alg.name, names)):
            if digest is not None and entry.kind == "dir":
                tag.held(digest)
            else:
                _stray(notes, repo, "tags", f"{where}/{entry.name}")


def _tag_histories(files: list[FileEntry], top: str) -> dict[str, list[str]]:
    """Tag name -> the digests its index holds, from a walk of the tags directory."""
    history: dict[str, list[str]] = {}
    for f in files:
        tag_name, _, rest = f.key[len(top) + 1:].partition("/")
        parts = rest.split("/")
        if len(parts) == 4 and parts[0] == "index" and parts[3] == "link":
            digest = layout.digest_from_parts(parts[1], parts[2])
            if digest:
                history.setdefault(tag_name, []).append(digest)
    return history


def _implied(link: FileEntry, candidates: Iterable[str]) -> bytes | None:
    """The content of ``link`` when its MD5 is that of one of ``candidates``, else None."""
    if link.md5 is None:
        return None
    for digest in candidates:
        if hashlib.md5(digest.encode("ascii"), usedforsecurity=False).hexdigest() == link.md5:
            return digest.encode("ascii")
    return None


def _read_link(store: Store, key: str) -> bytes | Exception:
    """A tag's current link, or what reading it raised (handled by :func:`_current`)."""
    try:
        return store.read(key, 1024)
    except (FileNotFoundError, StoreError) as exc:
        return exc


def _current(content: bytes | Exception, notes: _Notes, repo: Repository, tag: Tag,
             key: str) -> str | None:
    try:
        if isinstance(content, Exception):
            raise content
        # The interpreter's shared string of the digest, as the revision listing has it, not
        # a copy of 120 bytes per tag (the tags a child process reads are interned likewise
        # when they arrive).
        return sys.intern(layout.parse_link(content))
    except FileNotFoundError:
        return None
    except (StoreError, layout.InvalidName) as exc:
        reason = exc.message if isinstance(exc, StoreError) else str(exc)
        # Which manifest the tag holds is unknown: the mark keeps every digest of its index.
        tag.bad_link = True
        notes.note(Finding("bad-tag-link", WARNING,
                           f"tag {printable(tag.name)!r}: current link unusable ({reason}); "
                           "every manifest in the tag's history is kept: fix or delete the tag",
                           repository=repo.name, key=key,
                           images=(f"{repo.name}:{printable(tag.name)}",)))
        return None


def _children(files: list[FileEntry], top: str) -> list[DirEntry]:
    """The entries directly inside ``top`` that a walk of it implies, in first-seen order: a
    name with something below it is a directory, one without is a file."""
    kinds: dict[str, str] = {}
    for f in files:
        name, sep, _ = f.key[len(top) + 1:].partition("/")
        if sep:
            kinds[name] = "dir"
        else:
            kinds.setdefault(name, f.kind)
    return [DirEntry(name, kind) for name, kind in kinds.items()]


def _scan_layers(store: Store, notes: _Notes, repo: Repository) -> None:
    top = layout.layers_dir(repo.name)
    listed: list[Digests] = []
    found: list[str] = []
    try:
        if store.flat_walk:
            # One listing gives every link and its mtime (what the grace period asks).
            files = list(store.walk(top))
            algorithms = _children(files, top)
            by_alg: dict[str, list[FileEntry]] = {}
            for f in files:
                by_alg.setdefault(f.key[len(top) + 1:].partition("/")[0], []).append(f)
                parts = f.key[len(top) + 1:].split("/")
                if len(parts) == 3 and parts[2] == "link" and f.mtime is not None:
                    digest = layout.digest_from_parts(parts[0], parts[1])
                    if digest:
                        repo.layer_mtimes[digest] = f.mtime

            def inside(alg: str) -> list[DirEntry]:
                return _children(by_alg.get(alg, []), f"{top}/{alg}")
        else:
            algorithms = store.list_dir(top)

            def inside(alg: str) -> list[DirEntry]:
                return store.list_dir(f"{top}/{alg}")
        for alg in algorithms:
            if alg.kind == "dir" and not store.flat_walk:
                digests = _digest_directories(store, f"{top}/{alg.name}", alg.name)
                if digests is not None:  # nearly every repository: nothing else to look at
                    notes.tick(len(digests))
                    listed.append(digests)
                    continue
            entries = inside(alg.name) if alg.kind == "dir" else []
            notes.tick(len(entries))
            names = [e.name for e in entries]
            for entry, digest in zip(entries, layout.digests_from_names(alg.name, names)):
                if digest and entry.kind == "dir":
                    found.append(digest)
                else:
                    notes.note(Finding("stray-entry", HINT, "unexpected entry among layer links",
                                       repository=repo.name,
                                       key=f"{top}/{alg.name}/{entry.name}"))
            if alg.kind != "dir":
                notes.note(Finding("stray-entry", HINT, "unexpected entry among layer links",
                                   repository=repo.name, key=f"{top}/{alg.name}"))
    except StoreError as exc:
        # Layer links keep nothing alive, but a sweep would act on an incomplete listing.
        notes.note(_unreadable(exc, f"the layer links of {repo.name}"))
    finally:
        # Each once (a listing names each directory once; a listing that did not would
        # not make a link count twice).
        repo.layers = Digests.union(listed, found)


def _blob_prefixes(store: Store, inv: Inventory, top: str) -> list[tuple[str, str]]:
    """The (algorithm, prefix directory) pairs of the blob store, in order; what else is
    there noted."""
    prefixes: list[tuple[str, str]] = []
    for alg in sorted(store.list_dir(top)):
        if alg.kind != "dir" or alg.name not in layout.DIGEST_HEX_LENGTH:
            inv.note(Finding("stray-entry", HINT, "unexpected entry in the blob store",
                             key=f"{top}/{alg.name}"))
            continue
        for prefix in sorted(store.list_dir(f"{top}/{alg.name}")):
            where = f"{top}/{alg.name}/{prefix.name}"
            if prefix.kind != "dir":
                inv.note(Finding("stray-entry", HINT, "unexpected entry in the blob store",
                                 key=where))
                continue
            prefixes.append((alg.name, prefix.name))
    return prefixes


def _scan_blobs(store: Store, inv: Inventory, tick: Progress, pool: IOPool) -> None:
    top = layout.BLOBS
    # Each prefix's digests packed, joined as they come: prefixes are listed in order.
    joined = DigestsJoin()
    found: list[str] = []  # digests of the prefixes listed entry by entry
    if store.flat_walk:
        inv.blob_stats = {}
    try:
        prefixes = _blob_prefixes(store, inv, top)
        if store.flat_walk:
            walked: dict[tuple[str, str], list[FileEntry]] = {}
            for alg_name in dict.fromkeys(a for a, _ in prefixes):
                names = [p for a, p in prefixes if a == alg_name]
                for name, files in _walk_prefixes(store, f"{top}/{alg_name}", names,
                                                  pool).items():
                    walked[alg_name, name] = files
            listings: Iterable[Any] = [_grouped(walked[p], f"{top}/{p[0]}/{p[1]}")
                                       for p in prefixes]
        else:
            # One prefix at a time: all listings at once were a transient 180 bytes a blob.
            listings = pool.imap(lambda p: _list_prefix(store, top, *p), prefixes)
        for (alg_name, prefix_name), listing in zip(prefixes, listings):
            if isinstance(listing, StoreError):
                raise listing
            if isinstance(listing, Digests):  # blob directories only, each named by a digest
                tick(len(listing))
                joined.add(listing)
                continue
            entries, files = listing
            tick(len(entries))
            for digest, entry in _blob_entries(inv, top, alg_name, prefix_name, entries):
                found.append(digest)
                if files is not None:
                    _note_blob_files(inv, digest, f"{top}/{alg_name}/{prefix_name}/{entry}",
                                     files.get(entry, []))
    except StoreError as exc:
        inv.note(_unreadable(exc, "the blob store"))
    finally:
        # What was listed before a failure, as a listing cut short has it: the failure
        # itself stops any sweep.
        inv.blobs = joined.done(found)


def _blob_entries(notes: Inventory | _Notes, top: str, alg_name: str, prefix_name: str,
                  entries: list[DirEntry]) -> list[tuple[str, str]]:
    """(digest, entry name) of each blob directory among ``entries`` of a prefix directory
    listed entry by entry; what else is there noted."""
    where = f"{top}/{alg_name}/{prefix_name}"
    blobs = []
    names = [e.name for e in entries]
    for entry, digest in zip(entries, layout.digests_from_names(alg_name, names)):
        if digest and entry.kind == "dir" and entry.name[:2] == prefix_name:
            blobs.append((digest, entry.name))
        elif entry.kind == "symlink":
            notes.note(Finding("symlink", WARNING,
                               "symlink in the blob store is not followed and never "
                               "removed", key=f"{where}/{entry.name}"))
        else:
            notes.note(Finding("stray-entry", HINT,
                               "unexpected entry in the blob store (not a blob "
                               "directory under its own prefix); left alone",
                               key=f"{where}/{entry.name}"))
    return blobs


def sift_blobs(store: Store, inv: Inventory, marked: DigestKeys, read: Digests,
               more_read: Iterable[str] = (), jobs: int = 1, processes: int = 1) -> list[str]:
    """Make the blob listing of an inventory taken without it, after its mark: only the
    blobs whose keys ``marked`` lacks are kept (``Inventory.blobs``, all a plan takes of it),
    the others counted (``Inventory.blob_count``). Returns those of the manifests the mark
    read (``read`` and ``more_read``) that the listing lacks.

    At a million blobs the listing is 32 MB of hashes, held to the end of a gc; sifted, a few
    thousand. The prefixes are shared among ``processes`` processes (``Store.forkable``),
    each in ``jobs`` threads once the store makes them wait; only the sifted part of each
    comes back. Findings come in the order :func:`list_blobs` gives them."""
    if inv.blobs_listed:
        raise ValueError("the inventory has its blob listing already")
    top = layout.BLOBS
    more = sorted(set(more_read))
    unmarked: list[str] = []
    lacking: list[str] = []
    count = 0
    seen: set[tuple[str, str]] = set()
    pools = PoolPerProcess(jobs, store.waits)
    try:
        prefixes = _blob_prefixes(store, inv, top)

        def sift(part: list[tuple[str, str]]) -> list[_Sifted | tuple[str, str]]:
            return pools.get().map(
                lambda p: _sift_prefix(store, top, *p, marked, read, more), part)

        for prefix, outcome in zip(prefixes, fork_map(sift, prefixes, processes if
                                                      store.forkable else 1)):
            if isinstance(outcome, tuple):
                raise StoreError(*outcome)
            count += outcome.count
            unmarked += outcome.unmarked
            lacking += outcome.lacking
            for finding in outcome.notes:
                inv.note(finding)
            seen.add(prefix)
    except StoreError as exc:
        inv.note(_unreadable(exc, "the blob store"))
    finally:
        pools.close()
        inv.blobs = Digests(unmarked)
        inv.blob_count = count
        inv.sifted_by = marked
        inv.blobs_listed = True
    # What the mark read under a prefix directory that is not there is not listed either.
    lacking += [d for first in range(256) if ("sha256", f"{first:02x}") not in seen
                for d in read.starting(f"sha256:{first:02x}")]
    lacking += [d for d in chain(read.others, more) if _prefix_of(d) not in seen]
    return sorted(set(lacking))


def _prefix_of(digest: str) -> tuple[str, str]:
    """The (algorithm, prefix directory) a blob of ``digest`` is filed under."""
    algorithm, _, hexes = digest.partition(":")
    return algorithm, hexes[:2]


@dataclass(slots=True)
class _Sifted:
    """What a blob prefix directory holds, sifted by :func:`sift_blobs`."""

    count: int  # blobs
    unmarked: list[str]  # those whose keys are not marked
    lacking: list[str]  # manifests read under this prefix, not there
    notes: list[Finding]


def _sift_prefix(store: Store, top: str, alg_name: str, prefix_name: str, marked: DigestKeys,
                 read: Digests, more_read: list[str]) -> _Sifted | tuple[str, str]:
    listing = _list_prefix(store, top, alg_name, prefix_name)
    if isinstance(listing, StoreError):
        return listing.key, listing.message  # an exception's pickling loses its fields
    notes = _Notes()
    if not isinstance(listing, Digests):
        listing = Digests(d for d, _ in _blob_entries(notes, top, alg_name, prefix_name,
                                                     listing[0]))
    start = f"{alg_name}:{prefix_name}"
    asked = read.starting(start) + [d for d in more_read if d.startswith(start)]
    return _Sifted(len(listing), marked.missing(listing), listing.missing(asked), notes.notes)


def _list_prefix(store: Store, top: str, algorithm: str,
                 prefix: str) -> Digests | tuple[list[DirEntry], None] | StoreError:
    """The digests of blob prefix directory ``top/algorithm/prefix`` when it holds blob
    directories only, each under its own prefix (nearly every one), else its entries."""
    where = f"{top}/{algorithm}/{prefix}"
    digests = _digest_directories(store, where, algorithm, prefix) if len(prefix) == 2 \
        else None
    if digests is not None:
        return digests
    try:
        return store.list_dir(where), None
    except StoreError as exc:
        return exc


def _digest_directories(store: Store, key: str, algorithm: str,
                        prefix: str = "") -> Digests | None:
    """The digests named by the entries of ``key`` when each is a directory named by an
    ``algorithm`` digest that starts with ``prefix``, as store.subdirectories tells at less
    cost than a listing; else None: list it, and say what else is there."""
    names = store.subdirectories(key)
    if names is None or not layout.all_hashes(algorithm, names) or \
            (prefix and not all(map(str.startswith, names, repeat(prefix)))):
        return None
    return Digests.of_hashes(algorithm, names)


#: A blob store with up to this many objects is walked as one flat listing (a request per
#: 1,000 objects, beside the listing of the repositories); a larger one prefix by prefix, in
#: parallel.
SEQUENTIAL_WALK_LIMIT = 20_000
_WALK_CHECK_EVERY = 1000  # objects: the size of a listing page


def _walk_prefixes(store: Store, alg_key: str, names: list[str],
                   pool: IOPool) -> dict[str, list[FileEntry]]:
    """(flat_walk stores) The files below each prefix directory ``names`` of ``alg_key``.

    A flat walk of ``alg_key`` costs a request per 1,000 objects, where a walk of each of the
    256 prefixes costs at least 256 requests: a small store is walked whole. Once the part
    walked shows the store is large (the objects seen, scaled by the share of prefixes they
    cover, exceed :data:`SEQUENTIAL_WALK_LIMIT`), the rest is walked prefix by prefix in
    parallel, starting again at the prefix the flat walk had reached."""
    files: dict[str, list[FileEntry]] = {name: [] for name in names}
    position = {name: i for i, name in enumerate(names)}
    seen = 0
    stopped_at: str | None = None
    walk = store.walk(alg_key)
    try:
        for f in walk:
            name, below, _ = f.key[len(alg_key) + 1:].partition("/")
            if not below or name not in files:
                continue  # beside the prefixes, or a prefix created since they were listed
            files[name].append(f)
            seen += 1
            if seen % _WALK_CHECK_EVERY == 0 and \
                    seen * len(names) / (position[name] + 1) > SEQUENTIAL_WALK_LIMIT:
                stopped_at = name
                break
    finally:
        close = getattr(walk, "close", None)
        if close is not None:
            close()
    if stopped_at is not None:
        rest = names[position[stopped_at]:]
        for name, listing in zip(rest, pool.map(
                lambda n: list(store.walk(f"{alg_key}/{n}")), rest)):
            files[name] = listing
    return files


def _grouped(files: list[FileEntry], where: str) -> tuple[list[DirEntry],
                                                          dict[str, list[FileEntry]]]:
    """The entries of one blob prefix, from a walk of it, and the files below each."""
    below: dict[str, list[FileEntry]] = {}
    for f in files:
        below.setdefault(f.key[len(where) + 1:].partition("/")[0], []).append(f)
    return _children(files, where), below


def _note_blob_files(inv: Inventory, digest: str, blob_dir: str, files: list[FileEntry]) -> None:
    assert inv.blob_stats is not None
    strays = []
    for f in files:
        rel = f.key[len(blob_dir) + 1:]
        if rel == "data" and f.kind == "file" and f.size is not None and f.mtime is not None:
            inv.blob_stats[digest] = Stat(f.size, f.mtime)
        else:
            strays.append(f"{blob_dir}/{rel.partition('/')[0]}")
    if strays:
        inv.blob_strays[digest] = sorted(set(strays))
