"""regstore verify: the fsck of a registry store. Re-hashes blobs, reads every link and manifest,
and names the images each problem breaks.

:func:`verify` takes a store (opened read-only: it never writes into it) and returns a
:class:`VerifyReport`; it prints nothing. It checks, in this order:

1. the blob tree: every ``blobs/<alg>/<xx>/<hex>`` directory holds a regular ``data`` file and
   nothing else; every ``data`` hashes (sha256, sha384 or sha512, by its path) to its digest.
   Manifests are always hashed (they are read anyway); layer and config data are hashed unless
   ``metadata_only``, within the run's budget (see *Rotation*), in ``jobs`` threads, 1 MiB at a
   time (hashlib releases the GIL on such reads);
2. links: every revision, layer, tag ``current`` and tag ``index`` link holds a well-formed
   digest; revision, layer and index links name the digest of their own path; each points at
   a blob that exists;
3. tags: ``current`` names a revision linked in its repository, and is in the tag's index;
4. manifests: each linked revision parses as a type the registry stores; everything it
   references exists with the size its descriptor states and is linked into the repository's
   ``_layers``; index children are linked revisions of the same repository;
5. leftovers: orphan blobs (what ``regstore gc`` would reclaim), untagged manifests, stale
   uploads, empty repositories.

Liveness: every linked revision is an image the registry serves (by digest, if no tag names
it), so whatever it needs is *needed*. An error is a problem that breaks a needed thing and
names the images it breaks: ``repo:tag`` for each tag that reaches it (through index parents
too) and ``repo@digest`` for each untagged manifest that depends on it.

Finding kinds (stable identifiers, used in the JSON report)
------------------------------------------------------------
======================== ============== ===================================================
kind                     severity       meaning
======================== ============== ===================================================
blob-corrupt             error/warning  ``data`` does not hash to its digest (flipped bits,
                                        truncation: the message gives the sizes). Error when
                                        needed, warning for an orphan. The registry serves
                                        these bytes until they are replaced (--quarantine).
missing-blob             error          a config, layer or artifact blob a linked manifest
                                        references is not in the store, or its directory
                                        has no ``data`` (foreign layers with ``urls`` may be
                                        absent).
missing-manifest         error          a linked revision's manifest blob is not in the store
                                        (or has no ``data``).
invalid-manifest         error          a linked revision's blob hashes right but is not a
                                        manifest type the registry stores.
size-mismatch            error          a blob's size differs from what a descriptor of a
                                        linked manifest states (a truncated blob that was not
                                        hashed in this run shows up here).
missing-layer-link       error          a blob a manifest references is not linked into the
                                        repository's ``_layers``: the registry answers "blob
                                        unknown" for it.
missing-child            error          an index lists a child that is not a linked revision
                                        of the same repository.
dangling-tag             error          a tag's ``current`` names a digest with no revision
                                        link in the repository, or the tag has no ``current``
                                        ("manifest unknown", distribution#3899).
bad-link                 error/warning  a link file is empty or holds no digest (the
                                        registry's GC aborts on it, distribution#1960). Error
                                        for revision links, ``current`` links and layer links
                                        a manifest needs; warning otherwise.
link-mismatch            error/warning  a revision, layer or tag index link holds a digest
                                        other than its path's: the registry would serve other
                                        bytes under this digest. Severity as for bad-link.
dangling-link            hint           a layer link or tag index entry to a blob that is
                                        gone, where nothing needs it (e.g. the link of a
                                        swept orphan).
unreadable               error          a file or directory could not be read: what it holds
                                        was not verified.
symlink                  error/warning  a symlink where the registry writes files or
                                        directories; regstore does not follow it, so what it
                                        points at was not verified.
invalid-repository-name  error          a repository directory whose name the registry
                                        cannot serve.
invalid-tag-name         warning        a tag directory whose name is not a valid tag.
tag-not-in-index         warning        a tag's ``current`` is not in the tag's index.
stray-entry              hint           an entry the registry never writes (a file in a blob
                                        directory besides ``data``, a name that is not a
                                        digest, a blob directory under the wrong prefix).
blob-without-data        hint           a blob directory without ``data`` that nothing needs.
orphan-blob              hint           a blob no manifest references: ``regstore gc``
                                        reclaims it (the message gives its size).
untagged-manifest        hint           a linked revision no tag reaches (through index
                                        children or as a referrer): ``regstore gc -m``
                                        removes it.
stale-upload             hint           an upload older than the registry's upload purging
                                        age (``storage.maintenance.uploadpurging.age``).
empty-repository         hint           a repository with no manifests and no tags.
vanished                 hint           removed while verify ran; not verified.
state-corrupt            warning        (CLI) the rotation state file failed its checks; the
                                        run ignored it and verified everything.
======================== ============== ===================================================

Blob problems are one finding per digest (``repository`` set only when one repository needs
the blob); link, tag and reference problems one per repository and link.

Rotation
--------
With ``max_bytes`` and/or ``max_duration`` (seconds from the start of the run) a run hashes
only part of the layer data, least recently verified blobs first, and records in a
:class:`regstore.state.VerifyState` when each blob hashed right. Successive runs make a *pass*
over the store: a blob is *due* when it was not verified since the pass started; a bounded run
hashes due blobs until its budget is spent (always at least one blob for ``max_bytes``; a hash
still running when ``max_duration`` is reached is abandoned and not counted) and never wraps
around: when nothing is due, the next run starts a new pass. So successive bounded runs hash
disjoint sets that together are the whole store. An unbounded run hashes everything and
completes a pass. Manifests, and blobs the state knows to be corrupt, are hashed on every run
regardless of the budget. The state file format is in :mod:`regstore.state`::

    regstore-verify-state 1
    pass <pass started: seconds since the epoch>
    <digest> <ok|bad> <hashed at> <size> <mtime>
    ...
    end <number of digest lines> <xxh3_64 of every byte before this line, 16 hex digits>

JSON report (``regstore verify --json``, built by :func:`regstore.report.verify_json`)
--------------------------------------------------------------------------------------
``format`` 1, as for ``gc``; fields are only ever added within one format number::

    {"format": 1, "regstore": "0.1.0", "command": "verify", "store": "/var/lib/registry",
     "metadata_only": false, "complete": true, "exit_code": 0,
     "started": 1767225600.0, "seconds": 12.5,
     "summary": {"errors": 0, "warnings": 0, "hints": 3,
                 "kinds": {"orphan-blob": 2, "untagged-manifest": 1},
                 "repositories": 8, "manifests": 26, "tags": 12, "layer_links": 40,
                 "blobs_total": 52, "bytes_total": 123456,
                 "blobs_hashed": 52, "bytes_hashed": 123456, "manifests_hashed": 26,
                 "orphan_blobs": 2, "orphan_bytes": 4444, "quarantined": 0,
                 "coverage": {"blobs_fraction": 1.0, "bytes_fraction": 1.0,
                              "stopped_by": null, "pass_started": 1767225600.0,
                              "new_pass": true, "pass_complete": true,
                              "blobs_due": 0, "bytes_due": 0, "never_verified": 0,
                              "oldest_verified_at": 1767225600.1,
                              "oldest_verification_age": 0.0,
                              "state": "ok", "state_file": "…/.regstore/verify-state"}},
     "findings": [{"kind": "blob-corrupt", "severity": "error", "message": "…",
                   "digest": "sha256:…", "repository": null,
                   "path": "blobs/sha256/ab/ab…/data", "images": ["app:v1"]}],
     "quarantined": [{"n": 0, "kind": "blob", "key": "blobs/sha256/ab/ab…",
                      "digest": "sha256:…", "repository": null, "size": 1040,
                      "reason": "data hashes to sha256:…, not to its digest",
                      "time": 1767225612.0, "item": "<DIR>/<run>/items/0"}],
     "notes": []}

``complete`` is true when every blob's data was hashed in this run. ``quarantined`` lists what
``--quarantine DIR`` moved (the journal lines of :mod:`regstore.quarantine`, with where the
item now is). ``coverage.state`` is ``ok`` (a state file was read), ``absent`` (none yet),
``corrupt`` (it failed its checks: the run ignored its bounds and verified everything) or
``disabled`` (``--no-state``). ``oldest_verified_at`` is the oldest successful hash among the
blobs now in the store (null when none has one); ``never_verified`` counts blobs with none.
A run that stops early (exit code 3, 4 or 5) prints ``{"format", "regstore", "command",
"exit_code", "error"}`` instead, as ``gc`` does.

Exit codes of ``regstore verify``: 0 no errors (warnings and hints allowed); 1 errors found (or
a corrupt blob could not be quarantined); 2 usage; 3 no store, bad config, unreadable state
file or unusable quarantine directory; 4 ``--quarantine`` while the registry is not read-only
(without ``--force``); 5 a sweep holds the lock; 130 interrupted (what was hashed until then is
saved in the state file).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Callable, Iterable, Iterator, TypeVar

from regstore import layout
from regstore.findings import ERROR, HINT, SEVERITIES, WARNING, Finding, printable
from regstore.holding import Held
from regstore.inventory import Inventory, Repository, Tag, take_inventory
from regstore.pool import IOPool, processes_for
from regstore.manifest import MAX_MANIFEST_BYTES, Descriptor, Manifest, ManifestError, \
    parse_manifest
from regstore.quarantine import Quarantine, QuarantineError
from regstore.state import VerifyState
from regstore.store.base import Store, StoreError
from regstore.store.filesystem import FilesystemStore

CHUNK_SIZE = 1024 * 1024
DEFAULT_UPLOAD_MAX_AGE = 168 * 3600.0  # the registry's default uploadpurging.age
CHECKPOINT_INTERVAL = 300.0
MAX_LINK_BYTES = 1024
MAP_BATCH = 4096  # items handed to the thread pool at a time

#: ``progress(phase, advance, total)``; phases in order: "listing", "blobs", "links",
#: "manifests", "hashing" (advance and total in bytes for "hashing", items otherwise; total
#: None when unknown).
Progress = Callable[[str, int, "int | None"], None]

_T = TypeVar("_T")
_R = TypeVar("_R")

KINDS: dict[str, str] = {
    "blob-corrupt": "error/warning", "missing-blob": "error", "missing-manifest": "error",
    "invalid-manifest": "error", "size-mismatch": "error", "missing-layer-link": "error",
    "missing-child": "error", "dangling-tag": "error", "bad-link": "error/warning",
    "link-mismatch": "error/warning", "dangling-link": "hint", "unreadable": "error",
    "symlink": "error/warning", "invalid-repository-name": "error",
    "invalid-tag-name": "warning", "tag-not-in-index": "warning", "stray-entry": "hint",
    "blob-without-data": "hint", "orphan-blob": "hint", "untagged-manifest": "hint",
    "stale-upload": "hint", "empty-repository": "hint", "vanished": "hint",
    "state-corrupt": "warning",
}


# --- values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlobFile:
    """A blob's ``data`` as listed: its size and modification time."""

    size: int
    mtime: float


@dataclass(frozen=True, slots=True)
class CorruptBlob:
    """A blob whose data does not hash to its digest: what :mod:`regstore.quarantine` moves."""

    digest: str
    actual: str  # what the data hashes to
    size: int
    mtime: float
    needed: bool

    @property
    def key(self) -> str:
        return layout.blob_data(self.digest)


@dataclass
class Coverage:
    """How much of the store this run hashed, and where the rotation stands."""

    blobs_total: int = 0
    bytes_total: int = 0
    blobs_hashed: int = 0
    bytes_hashed: int = 0
    manifests_hashed: int = 0
    stopped_by: str | None = None  # "max-bytes", "max-duration" or None
    pass_started: float | None = None
    new_pass: bool = False
    pass_complete: bool = False
    blobs_due: int = 0
    bytes_due: int = 0
    never_verified: int = 0
    oldest_verified_at: float | None = None
    complete: bool = False  # every blob's data hashed in this run


@dataclass
class VerifyReport:
    """What :func:`verify` found: findings (sorted: errors first), counts and coverage."""

    findings: list[Finding]
    coverage: Coverage
    corrupt: list[CorruptBlob]
    metadata_only: bool
    started: float
    seconds: float
    repositories: int = 0
    manifests: int = 0
    tags: int = 0
    layer_links: int = 0
    orphan_blobs: int = 0
    orphan_bytes: int = 0

    def count(self, severity: str) -> int:
        return sum(f.severity == severity for f in self.findings)

    def add(self, finding: Finding) -> None:
        """Add a finding made outside :func:`verify` (the CLI's, about the state file)."""
        self.findings.append(finding)
        self.findings.sort(key=_finding_order)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]


@dataclass(frozen=True, slots=True)
class Link:
    """What a link file holds: ``ok`` with its digest, ``absent``, ``bad`` (not a digest) or
    ``unreadable``, with a detail."""

    status: str
    digest: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Broken:
    """A manifest that cannot be used: ``missing``, ``corrupt``, ``invalid``, ``unreadable``,
    ``vanished``. ``claimed`` is what corrupt bytes still parse as (for the orphan count only)."""

    reason: str
    detail: str
    claimed: Manifest | None = None


@dataclass(frozen=True, slots=True)
class _Hashed:
    actual: str
    size: int


@dataclass(frozen=True, slots=True)
class _Failed:
    reason: str  # "vanished", "unreadable", "aborted"
    detail: str = ""


# --- the run ------------------------------------------------------------------------------


def verify(store: Store, state: VerifyState | None = None, *, metadata_only: bool = False,
           jobs: int = 8, max_bytes: int | None = None, max_duration: float | None = None,
           upload_max_age: float = DEFAULT_UPLOAD_MAX_AGE,
           clock: Callable[[], float] = time.time, progress: Progress | None = None,
           checkpoint: Callable[[], None] | None = None,
           checkpoint_interval: float = CHECKPOINT_INTERVAL) -> VerifyReport:
    """Check every blob, link, tag and manifest of ``store`` and return what is wrong.

    ``state`` is updated in place as blobs are hashed (so a caller that saves it after an
    interruption keeps the progress made); ``checkpoint`` is called from time to time while
    data is hashed, for the caller to save it. ``max_bytes`` and ``max_duration`` bound the
    hashing of layer data (see *Rotation* in the module docstring). Never writes to ``store``.
    """
    run = _Run(store, state if state is not None else VerifyState(), metadata_only,
               max(1, jobs), max_bytes, max_duration, upload_max_age, clock,
               progress or (lambda phase, n, total: None), checkpoint, checkpoint_interval)
    return run.run()


class _Run:
    def __init__(self, store: Store, state: VerifyState, metadata_only: bool, jobs: int,
                 max_bytes: int | None, max_duration: float | None, upload_max_age: float,
                 clock: Callable[[], float], progress: Progress,
                 checkpoint: Callable[[], None] | None, checkpoint_interval: float) -> None:
        self.store = store
        self.state = state
        self.metadata_only = metadata_only
        self.jobs = jobs
        self.max_bytes = max_bytes
        self.max_duration = max_duration
        self.upload_max_age = upload_max_age
        self.clock = clock
        self.progress = progress
        self.checkpoint = checkpoint
        self.checkpoint_interval = checkpoint_interval
        self.findings: list[Finding] = []
        self.coverage = Coverage()
        self.started = 0.0
        self.inv = Inventory()
        # the blob tree: digest -> its data, or why there is none ("no-data", "symlink",
        # "unreadable: …", "vanished")
        self.files: dict[str, BlobFile] = {}
        self.unusable: dict[str, str] = {}
        self.links: dict[str, Link] = {}  # link key -> content
        self.manifests: dict[str, Manifest | Broken] = {}
        self.corrupt: dict[str, CorruptBlob] = {}
        self.hashed_as_manifest: set[str] = set()
        self.vanished: set[str] = set()
        self.unreadable_data: dict[str, str] = {}
        # the reference graph of linked revisions
        self.revision_repos: dict[str, set[str]] = defaultdict(set)
        self.tags_of: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.parents: dict[tuple[str, str], set[str]] = defaultdict(set)
        # blob -> (repository, manifest, descriptor) of each linked revision referencing it
        self.refs: dict[str, list[tuple[str, str, Descriptor]]] = defaultdict(list)
        self.child_refs: dict[str, list[tuple[str, str, Descriptor]]] = defaultdict(list)
        # repository -> blob -> the manifests of that repository that need it
        self.needed_in: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self._images: dict[tuple[str, str], tuple[str, ...]] = {}

    def run(self) -> VerifyReport:
        self.started = self.clock()
        self.inv = take_inventory(self.store, lambda n: self.progress("listing", n, None),
                                  jobs=self.jobs, processes=processes_for(self.jobs))
        self.findings.extend(_inventory_findings(self.inv))
        self._scan_blobs()
        self._read_links()
        self._load_manifests()
        self._index()
        for name in sorted(self.inv.repositories):
            self._check_repository(self.inv.repositories[name])
        self._hash_data()
        self._check_blobs()
        orphans, orphan_bytes = self._orphans()
        self._leftovers()
        self._measure_coverage()
        self.findings.sort(key=_finding_order)
        repos = self.inv.repositories.values()
        return VerifyReport(
            findings=self.findings, coverage=self.coverage,
            corrupt=[replace(self.corrupt[d], needed=bool(self._needers(d)))
                     for d in sorted(self.corrupt)],
            metadata_only=self.metadata_only, started=self.started,
            seconds=self.clock() - self.started, repositories=len(self.inv.repositories),
            manifests=sum(len(r.revisions) for r in repos),
            tags=sum(len(r.tags) for r in repos), layer_links=sum(len(r.layers) for r in repos),
            orphan_blobs=orphans, orphan_bytes=orphan_bytes)

    def _map(self, fn: Callable[[_T], _R], items: list[_T]) -> Iterator[_R]:
        """``fn`` over ``items`` in ``jobs`` threads once the store makes the work wait
        (:class:`IOPool`), results in order, as they come: a batch at a time, so that a store
        of millions of blobs never has millions of futures."""
        if self.jobs == 1 or len(items) < 2:
            yield from map(fn, items)
            return
        pool = IOPool(self.jobs, self.store.waits)
        try:
            for start in range(0, len(items), MAP_BATCH):
                yield from pool.imap(fn, items[start:start + MAP_BATCH])
        finally:
            pool.close()

    # --- 1. the blob tree ---------------------------------------------------------------

    def _scan_blobs(self) -> None:
        digests = sorted(self.inv.blobs)
        for digest, (outcome, strays) in zip(digests, self._map(self._scan_blob, digests)):
            if isinstance(outcome, BlobFile):
                self.files[digest] = outcome
            else:
                self.unusable[digest] = outcome
            for key in strays:
                self.findings.append(Finding(
                    "stray-entry", HINT, "unexpected entry in a blob directory (the registry "
                    "writes only 'data' there); left alone", digest=digest, key=key))
            self.progress("blobs", 1, len(digests))

    def _scan_blob(self, digest: str) -> tuple[BlobFile | str, list[str]]:
        key = layout.blob_dir(digest)
        if self.inv.blob_stats is not None:
            # The listing walked the blob prefixes (an object store): it saw every object of
            # every blob directory, so nothing needs asking again.
            st = self.inv.blob_stats.get(digest)
            strays = list(self.inv.blob_strays.get(digest, []))
            if st is None:
                return "no-data", strays
            return BlobFile(st.size, st.mtime), strays
        try:
            entries = self.store.list_dir(key)
        except StoreError as exc:
            return f"unreadable: {exc.message}", []
        strays = [f"{key}/{e.name}" for e in entries if e.name != "data"]
        data = [e for e in entries if e.name == "data"]
        if not data:
            try:
                gone = not entries and self.store.stat(key) is None
            except StoreError as exc:
                return f"unreadable: {exc.message}", strays
            return ("vanished" if gone else "no-data"), strays
        if data[0].kind == "symlink":
            return "symlink", strays
        if data[0].kind != "file":
            # The registry stats <dir>/data and calls a directory there "blob unknown".
            return "no-data", strays + [f"{key}/data"]
        try:
            st = self.store.stat(f"{key}/data")
        except StoreError as exc:
            return f"unreadable: {exc.message}", strays
        if st is None:
            return "vanished", strays
        return BlobFile(st.size, st.mtime), strays

    # --- 2. links -----------------------------------------------------------------------

    def _read_links(self) -> None:
        keys = []
        for repo in self.inv.repositories.values():
            keys += [layout.revision_link(repo.name, d) for d in sorted(repo.revisions)]
            keys += [layout.layer_link(repo.name, d) for d in sorted(repo.layers)]
            for tag in repo.tags.values():
                if not tag.valid_name:
                    continue
                keys += [layout.tag_index_entry_dir(repo.name, tag.name, d) + "/link"
                         for d in sorted(tag.index)]
                if tag.bad_link:  # the inventory knows it is bad; read it again for why
                    keys.append(layout.tag_current_link(repo.name, tag.name))
        for key, link in zip(keys, self._map(self._read_link, keys)):
            self.links[key] = link
            self.progress("links", 1, len(keys))

    def _read_link(self, key: str) -> Link:
        try:
            data = self.store.read(key, MAX_LINK_BYTES)
        except FileNotFoundError:
            return Link("absent")
        except StoreError as exc:
            if "larger than" in exc.message:
                return Link("bad", detail=f"larger than {MAX_LINK_BYTES} bytes")
            return Link("unreadable", detail=exc.message)
        try:
            return Link("ok", layout.parse_link(data))
        except layout.InvalidName as exc:
            return Link("bad", detail=str(exc))

    # --- 3. manifests -------------------------------------------------------------------

    def _load_manifests(self) -> None:
        """Read, hash and parse every linked revision and tag target, then the children of
        what parsed, to any depth (what gc's mark reads: the orphans below match its plan)."""
        todo = set()
        for repo in self.inv.repositories.values():
            todo.update(repo.revisions)
            todo |= {t.current for t in repo.tags.values() if t.current}
        while todo:
            batch = sorted(todo - self.manifests.keys())
            for digest, (outcome, hashed) in zip(batch, self._map(self._load_manifest, batch)):
                self.manifests[digest] = outcome
                if hashed is not None:
                    self.hashed_as_manifest.add(digest)
                    self._note_hash(digest, hashed)
                    self.coverage.manifests_hashed += 1
                self.progress("manifests", 1, None)
            todo = set()
            for digest in batch:
                m = self.manifests[digest]
                m = m.claimed if isinstance(m, Broken) else m
                if m is not None:
                    todo |= {c.digest for c in m.children} - self.manifests.keys()

    def _load_manifest(self, digest: str) -> tuple[Manifest | Broken, _Hashed | None]:
        if digest not in self.files:
            return Broken("missing", self._why_absent(digest)), None
        try:
            data = self.store.read(layout.blob_data(digest), MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            return Broken("vanished", "removed while verify ran"), None
        except StoreError as exc:
            if "larger than" in exc.message:
                # Not read into memory; hashed with the layer data instead.
                return Broken("invalid", f"{self.files[digest].size} bytes, larger than any "
                                         "real manifest"), None
            return Broken("unreadable", exc.message), None
        algorithm = digest.split(":", 1)[0]
        hashed = _Hashed(f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}", len(data))
        try:
            parsed: Manifest | None = parse_manifest(data, digest)
            problem = ""
        except ManifestError as exc:
            parsed, problem = None, str(exc)
        if hashed.actual != digest:
            return Broken("corrupt", f"hashes to {hashed.actual}", claimed=parsed), hashed
        if parsed is None:
            return Broken("invalid", problem), hashed
        return parsed, hashed

    def _why_absent(self, digest: str) -> str:
        why = self.unusable.get(digest)
        if why is None:
            return "there is no blob directory for it"
        if why == "no-data":
            return "its blob directory has no data file"
        if why == "symlink":
            return "its data is a symlink, which regstore does not follow"
        if why == "vanished":
            return "it was removed while verify ran"
        return f"its blob cannot be read ({why.removeprefix('unreadable: ')})"

    # --- the reference graph --------------------------------------------------------------

    def _index(self) -> None:
        for repo in self.inv.repositories.values():
            for tag in repo.tags.values():
                if tag.current and tag.valid_name:
                    self.tags_of[(repo.name, tag.current)].append(tag.name)
            for digest in repo.revisions:
                self.revision_repos[digest].add(repo.name)
                m = self.manifests.get(digest)
                if not isinstance(m, Manifest):
                    continue
                for child in m.children:
                    self.parents[(repo.name, child.digest)].add(digest)
                    self.child_refs[child.digest].append((repo.name, digest, child))
                for blob in {d.digest: d for d in m.blobs}.values():
                    self.refs[blob.digest].append((repo.name, digest, blob))
                    if not blob.foreign:
                        self.needed_in[repo.name][blob.digest].append(digest)
        for names in self.tags_of.values():
            names.sort()

    def images(self, repo: str, digest: str) -> tuple[str, ...]:
        """The images that break when manifest ``digest`` of ``repo`` does: ``repo:tag`` for
        each tag on it or on an index above it, ``repo@digest`` for each untagged one."""
        key = (repo, digest)
        if key not in self._images:
            found, seen, stack = set(), set(), [digest]
            while stack:
                current = stack.pop()
                if current in seen:
                    continue
                seen.add(current)
                tags = self.tags_of.get((repo, current))
                if tags:
                    found.update(f"{repo}:{t}" for t in tags)
                else:
                    found.add(f"{repo}@{current}")
                stack.extend(self.parents.get((repo, current), ()))
            self._images[key] = _sorted_images(found)
        return self._images[key]

    def _needers(self, digest: str) -> list[tuple[str, str]]:
        """(repository, manifest) pairs that need blob ``digest``: as a revision's own
        manifest, or as a non-foreign blob of a linked revision."""
        pairs = [(r, digest) for r in sorted(self.revision_repos.get(digest, ()))]
        pairs += [(r, m) for r, m, d in self.refs.get(digest, ()) if not d.foreign]
        return pairs

    def _blob_finding(self, kind: str, severity: str, message: str, digest: str,
                      pairs: Iterable[tuple[str, str]], key: str | None = None) -> Finding:
        pairs = list(pairs)
        repos = {r for r, _ in pairs}
        images = _sorted_images({i for r, m in pairs for i in self.images(r, m)})
        return Finding(kind, severity, message, digest=digest,
                       repository=repos.pop() if len(repos) == 1 else None,
                       key=key or layout.blob_data(digest), images=images)

    # --- 4. per repository: links, tags, references ---------------------------------------

    def _check_repository(self, repo: Repository) -> None:
        name = repo.name
        for digest in sorted(repo.revisions):
            key = layout.revision_link(name, digest)
            self._check_link(key, digest, name, ERROR, self.images(name, digest), "revision")
        needed_here = self.needed_in.get(name, {})
        for digest in sorted(repo.layers):
            key = layout.layer_link(name, digest)
            images = _sorted_images({i for m in needed_here.get(digest, ())
                                     for i in self.images(name, m)})
            severity = ERROR if digest in needed_here else WARNING
            link = self._check_link(key, digest, name, severity, images, "layer")
            if link.status == "ok" and digest not in self.files and digest not in needed_here \
                    and not self.unusable.get(digest, "").startswith("unreadable"):
                self.findings.append(Finding(
                    "dangling-link", HINT, "layer link to a blob that is gone; nothing needs "
                    "it (`regstore gc` removes such links)", digest=digest, repository=name,
                    key=key))
        linked = set(repo.layers)
        for blob in sorted(needed_here):
            key = layout.layer_link(name, blob)
            if blob in linked and self.links[key].status != "absent":
                continue  # linked (a bad or mismatched link was reported above)
            images = _sorted_images({i for m in needed_here[blob] for i in self.images(name, m)})
            self.findings.append(Finding(
                "missing-layer-link", ERROR,
                "blob is referenced by a manifest but not linked into the repository's _layers, "
                "so the registry answers 'blob unknown' for it: re-push the image",
                digest=blob, repository=name, key=key, images=images))
        for digest in sorted(repo.revisions):
            m = self.manifests.get(digest)
            if not isinstance(m, Manifest):
                continue
            for child in m.children:
                if child.digest not in repo.revisions:
                    self.findings.append(Finding(
                        "missing-child", ERROR,
                        f"index {digest} lists a child that is not a manifest of this "
                        "repository (no revision link), so pulls of that platform fail with "
                        "'manifest unknown': re-push the image", digest=child.digest,
                        repository=name, key=layout.revision_link(name, child.digest),
                        images=self.images(name, digest)))
        for tag_name in sorted(repo.tags):
            self._check_tag(repo, repo.tags[tag_name])

    def _check_link(self, key: str, own: str, repo: str, severity: str,
                    images: tuple[str, ...], what: str) -> Link:
        link = self.links[key]
        if link.status == "bad":
            self.findings.append(Finding(
                "bad-link", severity, f"{what} link holds no digest ({link.detail}); the "
                "registry's own garbage-collect aborts on it (distribution#1960)",
                digest=own, repository=repo, key=key,
                images=images if severity == ERROR else ()))
        elif link.status == "unreadable":
            self.findings.append(Finding(
                "unreadable", ERROR, f"cannot read the {what} link ({link.detail}); not "
                "verified: fix the permissions or the disk", digest=own, repository=repo,
                key=key, images=images))
        elif link.status == "ok" and link.digest != own:
            self.findings.append(Finding(
                "link-mismatch", severity, f"{what} link holds {link.digest}, not the digest of "
                "its own path: the registry would serve those bytes under this digest",
                digest=own, repository=repo, key=key,
                images=images if severity == ERROR else ()))
        elif link.status == "absent" and what == "revision":
            self.vanished.add(key)
        return link

    def _check_tag(self, repo: Repository, tag: Tag) -> None:
        name, tag_name, current = repo.name, tag.name, tag.current
        if not tag.valid_name:
            return  # reported by the inventory; the registry cannot serve it
        image = (f"{name}:{tag_name}",)
        current_key = layout.tag_current_link(name, tag_name)
        if tag.bad_link:
            link = self.links.get(current_key, Link("bad"))
            if link.status == "unreadable":
                self.findings.append(Finding(
                    "unreadable", ERROR, f"cannot read the tag's current link ({link.detail})",
                    repository=name, key=current_key, images=image))
            else:
                self.findings.append(Finding(
                    "bad-link", ERROR, f"the tag's current link holds no digest "
                    f"({link.detail or 'unusable'}), so pulls of the tag fail; the registry's "
                    "own garbage-collect aborts on it (distribution#1960): re-push or delete the "
                    "tag", repository=name, key=current_key, images=image))
        elif current is None:
            self.findings.append(Finding(
                "dangling-tag", ERROR, "tag has no current link, so pulls of it fail with "
                "'manifest unknown': re-push the image or delete the tag directory",
                repository=name, key=current_key, images=image))
        elif current not in repo.revisions:
            where = "its blob is still there" if current in self.files else "nor a blob"
            self.findings.append(Finding(
                "dangling-tag", ERROR, f"tag points at {current}, which has no revision link in "
                f"this repository ({where}), so pulls of it fail with 'manifest unknown' "
                "(distribution#3899): re-push the image or delete the tag", digest=current,
                repository=name, key=current_key, images=image))
        if current is not None and current not in tag.index:
            self.findings.append(Finding(
                "tag-not-in-index", WARNING, f"the tag's current manifest {current} is not in "
                "the tag's index (its history); pulls work, the registry's tag bookkeeping "
                "does not expect this", digest=current, repository=name, key=current_key))
        for digest in sorted(tag.index):
            key = layout.tag_index_entry_dir(name, tag_name, digest) + "/link"
            link = self._check_link(key, digest, name, WARNING, (), "tag index")
            if link.status == "ok" and digest not in self.files and digest != current \
                    and digest not in repo.revisions and digest not in self.unusable:
                # History of a manifest deleted through the API and then swept: 2.8 untags
                # only the tags that point at a manifest it deletes.
                self.findings.append(Finding(
                    "dangling-link", HINT, "tag history entry of a manifest that is gone; "
                    "nothing needs it", digest=digest, repository=name, key=key))

    # --- 5. hashing the data --------------------------------------------------------------

    def _note_hash(self, digest: str, hashed: _Hashed) -> None:
        f = self.files[digest]
        ok = hashed.actual == digest
        self.state.record(digest, f.size, f.mtime, self.clock(), ok)
        self.coverage.blobs_hashed += 1
        self.coverage.bytes_hashed += hashed.size
        if not ok:
            # Whether anything needs it is known once the graph is built (see run()).
            self.corrupt[digest] = CorruptBlob(digest, hashed.actual, hashed.size, f.mtime,
                                               needed=False)

    def _hash_data(self) -> None:
        data = {d: f for d, f in self.files.items() if d not in self.hashed_as_manifest}
        state, cov = self.state, self.coverage
        bad = sorted(d for d, f in data.items() if state.known_bad(d, f.size, f.mtime))
        known_bad = set(bad)
        rest = [d for d in data if d not in known_bad]
        last = {d: state.last_verified(d, data[d].size, data[d].mtime) for d in rest}

        def least_recent(digest: str) -> tuple[bool, float, str]:
            # Never verified before all, then least recently verified, then by digest.
            return last[digest] is not None, last[digest] or 0.0, digest

        bounded = self.max_bytes is not None or self.max_duration is not None
        if state.pass_started == 0.0:
            state.pass_started, cov.new_pass = self.started, True
        due = [d for d in rest if _before(last[d], state.pass_started)]
        if bounded and not due and not self.metadata_only:
            state.pass_started, cov.new_pass = self.started, True
            due = rest
        due.sort(key=least_recent)
        if self.metadata_only:
            todo: list[str] = []
        elif not bounded:
            todo = bad + sorted(rest, key=least_recent)
        else:
            todo = bad + self._within_bytes(due, data)
        cov.pass_started = state.pass_started
        finished = self._hash_all(todo)
        if not bounded and finished and not self.metadata_only:
            # Every blob was hashed at or after the run started: a whole pass in one run.
            state.pass_started = cov.pass_started = self.started
            cov.new_pass = True

    def _within_bytes(self, due: list[str], data: dict[str, BlobFile]) -> list[str]:
        if self.max_bytes is None:
            return due
        taken, total = [], 0
        for digest in due:
            size = data[digest].size
            if taken and total + size > self.max_bytes:
                self.coverage.stopped_by = "max-bytes"
                break
            taken.append(digest)
            total += size
        return taken

    def _deadline(self) -> float | None:
        return None if self.max_duration is None else self.started + self.max_duration

    def _hash_all(self, todo: list[str]) -> bool:
        """Hash ``todo`` in ``jobs`` threads; True unless the time ran out.

        Each thread takes the next blob from one queue and notes its result itself, under
        a lock that also covers the checkpoints: no future per blob and no thread handing
        results on (on 2 cores that cost 6 % of the hashing's time). A thread waits for a
        checkpoint being saved only once it has a result to note."""
        total = sum(self.files[d].size for d in todo)
        deadline = self._deadline()
        queue = deque(todo)
        lock = threading.Lock()  # the state, the coverage, the findings, the checkpoints
        shown = threading.Lock()  # the progress: hashing goes on while a checkpoint is saved
        stop = threading.Event()
        errors: list[BaseException] = []
        unfinished: list[bool] = []
        last_checkpoint = [self.clock()]

        def on_bytes(n: int) -> None:
            with shown:
                self.progress("hashing", n, total)

        def work() -> None:
            # One buffer a thread, filled again for every blob: a new one per blob was a
            # mapping of its own (regstore.cli.MMAP_THRESHOLD), its pages zeroed by the
            # kernel each time.
            buffer = bytearray(CHUNK_SIZE)
            try:
                while not stop.is_set():
                    if deadline is not None and self.clock() >= deadline:
                        unfinished.append(True)
                        return
                    try:
                        digest = queue.popleft()
                    except IndexError:
                        return
                    outcome = self._hash_blob(digest, stop, deadline, on_bytes, buffer)
                    with lock:
                        if not self._note_outcome(digest, outcome):
                            unfinished.append(True)
                        if self.checkpoint and self.clock() - last_checkpoint[0] >= \
                                self.checkpoint_interval:
                            self.checkpoint()
                            last_checkpoint[0] = self.clock()
            except BaseException as exc:  # raised in the calling thread, once all have ended
                errors.append(exc)
                stop.set()

        threads = [threading.Thread(target=work, name=f"regstore-hash-{n}", daemon=True)
                   for n in range(min(self.jobs, max(1, len(todo))))]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                # A join with a timeout, again and again: the system may hand Ctrl-C to a
                # hashing thread, and Python runs its handler in the main thread only once
                # that thread runs again, which a join without one holds back to its end.
                while thread.is_alive():
                    thread.join(0.2)
        except BaseException:  # Ctrl-C: running hashes stop at their next chunk
            stop.set()
            for thread in threads:
                if thread.is_alive():
                    thread.join()
            raise
        if errors:
            raise errors[0]
        if unfinished:
            self.coverage.stopped_by = "max-duration"
        return not unfinished

    def _note_outcome(self, digest: str, outcome: _Hashed | _Failed) -> bool:
        """Note what hashing ``digest`` gave; False if it was abandoned unfinished."""
        if isinstance(outcome, _Hashed):
            self._note_hash(digest, outcome)
        elif outcome.reason == "aborted":
            return False
        elif outcome.reason == "vanished":
            self.vanished.add(layout.blob_data(digest))
        else:
            self.unreadable_data[digest] = outcome.detail
        return True

    def _hash_blob(self, digest: str, stop: threading.Event, deadline: float | None,
                   on_bytes: Callable[[int], None], buffer: bytearray) -> _Hashed | _Failed:
        """Hash ``digest``'s data, read into ``buffer`` (the calling thread's) a chunk at a
        time."""
        algorithm = digest.split(":", 1)[0]
        h = hashlib.new(algorithm)
        view = memoryview(buffer)
        size = 0
        try:
            f = self.store.open(layout.blob_data(digest))
        except FileNotFoundError:
            # Not corruption: a blob removed between listing and hashing. Said so here, once.
            return _Failed("vanished")
        except StoreError as exc:
            return _Failed("unreadable", exc.message)
        with f:
            while True:
                if stop.is_set() or (deadline is not None and self.clock() >= deadline):
                    return _Failed("aborted")
                try:
                    n = f.readinto(buffer)  # type: ignore[attr-defined]
                except OSError as exc:
                    return _Failed("unreadable", exc.strerror or str(exc))
                if not n:
                    break
                h.update(view[:n])
                size += n
                on_bytes(n)
        return _Hashed(f"{algorithm}:{h.hexdigest()}", size)

    # --- 6. blobs: missing, corrupt, sizes ----------------------------------------------

    def _check_blobs(self) -> None:
        reported: set[str] = set()
        for digest in sorted(self.revision_repos):
            pairs = self._needers(digest)
            m = self.manifests.get(digest)
            if not isinstance(m, Broken):
                continue
            reported.add(digest)
            if m.reason == "vanished" or self.unusable.get(digest) == "vanished":
                self.vanished.add(layout.blob_data(digest))
            elif m.reason == "missing" and self.unusable.get(digest, "").startswith("unreadable"):
                self.findings.append(self._blob_finding(
                    "unreadable", ERROR, f"{self._why_absent(digest)}; not verified: fix the "
                    "permissions or the disk", digest, pairs))
            elif m.reason == "missing" and self.unusable.get(digest) == "symlink":
                self.findings.append(self._blob_finding(
                    "symlink", ERROR, "the manifest's data is a symlink, which regstore does not "
                    "follow; not verified: replace it by the real file", digest, pairs))
            elif m.reason == "missing":
                self.findings.append(self._blob_finding(
                    "missing-manifest", ERROR, f"linked manifest is missing: "
                    f"{self._why_absent(digest)}, so pulls fail with 'manifest unknown': "
                    "re-push the image or delete the manifest", digest, pairs))
            elif m.reason == "invalid":
                self.findings.append(self._blob_finding(
                    "invalid-manifest", ERROR, f"linked revision is not a manifest the registry "
                    f"stores ({m.detail}): re-push the image or delete the manifest", digest,
                    pairs))
            elif m.reason == "unreadable":
                self.findings.append(self._blob_finding(
                    "unreadable", ERROR, f"cannot read the manifest ({m.detail}); not verified: "
                    "fix the permissions or the disk", digest, pairs))
        for digest in sorted(self.refs):
            pairs = [p for p in self._needers(digest) if p[1] != digest]
            if digest in reported or not pairs or digest in self.files:
                continue
            why = self.unusable.get(digest, "")
            if why.startswith("unreadable"):
                self.findings.append(self._blob_finding(
                    "unreadable", ERROR, f"{self._why_absent(digest)}; not verified: fix the "
                    "permissions or the disk", digest, pairs))
            elif why == "symlink":
                self.findings.append(self._blob_finding(
                    "symlink", ERROR, "the blob's data is a symlink, which regstore does not "
                    "follow; not verified: replace it by the real file", digest, pairs))
            elif why == "vanished":
                self.vanished.add(layout.blob_data(digest))
            else:
                self.findings.append(self._blob_finding(
                    "missing-blob", ERROR, f"blob a manifest references is missing: "
                    f"{self._why_absent(digest)}, so pulls fail with 'blob unknown': re-push the "
                    "image", digest, pairs))
            reported.add(digest)
        for digest in sorted(self.corrupt):
            self.findings.append(self._corrupt_finding(self.corrupt[digest]))
        for digest, detail in sorted(self.unreadable_data.items()):
            pairs = self._needers(digest)
            self.findings.append(self._blob_finding(
                "unreadable", ERROR if pairs else WARNING, f"cannot read the blob's data "
                f"({detail}); not verified: fix the permissions or the disk", digest, pairs))
        for digest in sorted(self.files):
            if digest not in self.corrupt:
                self._check_size(digest)
        for digest, why in sorted(self.unusable.items()):
            if self._needers(digest):
                continue  # reported above as missing or unreadable
            if why == "no-data":
                self.findings.append(Finding(
                    "blob-without-data", HINT, "blob directory without data; nothing needs it "
                    "(`regstore gc` removes it)", digest=digest, key=layout.blob_dir(digest)))
            elif why == "symlink":
                self.findings.append(Finding(
                    "symlink", WARNING, "the blob's data is a symlink, which regstore does not "
                    "follow; nothing needs it", digest=digest, key=layout.blob_data(digest)))
            elif why.startswith("unreadable"):
                self.findings.append(Finding(
                    "unreadable", WARNING, f"{self._why_absent(digest)}; nothing needs it",
                    digest=digest, key=layout.blob_dir(digest)))
            elif why == "vanished":
                self.vanished.add(layout.blob_dir(digest))

    def _claims(self, digest: str) -> list[tuple[str, str, int]]:
        """(repository, manifest, size) of every descriptor with a size for ``digest``."""
        claims = []
        for repo, m, desc in self.refs.get(digest, []) + self.child_refs.get(digest, []):
            if desc.size is not None:
                claims.append((repo, m, desc.size))
        return claims

    def _corrupt_finding(self, c: CorruptBlob) -> Finding:
        pairs = self._needers(c.digest)
        claimed = sorted({s for _, _, s in self._claims(c.digest)})
        sizes = f"{c.size} bytes"
        if claimed and claimed != [c.size]:
            sizes += f", manifests say {' or '.join(map(str, claimed))}: truncated or extended"
        if pairs:
            message = (f"data hashes to {c.actual}, not to the digest it is filed under ({sizes}); "
                       "the registry serves these bytes until they are replaced: move them out "
                       "with --quarantine DIR, then re-push the image")
        else:
            message = (f"data hashes to {c.actual}, not to the digest it is filed under ({sizes}); "
                       "nothing needs it (`regstore gc` removes it)")
        return self._blob_finding("blob-corrupt", ERROR if pairs else WARNING, message, c.digest,
                                  pairs)

    def _check_size(self, digest: str) -> None:
        actual = self.files[digest].size
        wrong = [(r, m, s) for r, m, s in self._claims(digest) if s != actual]
        if not wrong:
            return
        claimed = " or ".join(str(s) for s in sorted({s for _, _, s in wrong}))
        self.findings.append(self._blob_finding(
            "size-mismatch", ERROR, f"blob is {actual} bytes but manifests say {claimed}; "
            "clients reject it: re-push the image (if the data is truncated, run without "
            "--metadata-only to confirm)", digest, [(r, m) for r, m, _ in wrong]))

    # --- 7. leftovers -------------------------------------------------------------------

    def _orphans(self) -> tuple[int, int]:
        """Blobs gc (without -m) would reclaim: nothing a linked revision, a tag or an index
        child reaches. Mirrors :mod:`regstore.mark`, reading the manifests loaded here."""
        marked: set[str] = set()
        stack: list[str] = []
        for repo in self.inv.repositories.values():
            stack += list(repo.revisions)
            stack += [t.current for t in repo.tags.values() if t.current]
            for signatures in repo.signatures.values():
                marked |= signatures
        while stack:
            digest = stack.pop()
            if digest in marked:
                continue
            marked.add(digest)
            m = self.manifests.get(digest)
            m = m.claimed if isinstance(m, Broken) else m
            if m is not None:
                marked.update(d.digest for d in m.blobs)
                stack.extend(c.digest for c in m.children)
        count = size = 0
        for digest in sorted(self.files.keys() - marked):
            f = self.files[digest]
            count += 1
            size += f.size
            self.findings.append(Finding(
                "orphan-blob", HINT, f"no manifest references this blob ({f.size} bytes): "
                "`regstore gc` reclaims it", digest=digest, key=layout.blob_dir(digest)))
        return count, size

    def _leftovers(self) -> None:
        now = self.clock()
        for name in sorted(self.inv.repositories):
            repo = self.inv.repositories[name]
            for digest in sorted(repo.revisions - self._reached_from_tags(repo)):
                self.findings.append(Finding(
                    "untagged-manifest", HINT, "no tag reaches this manifest (directly, as an "
                    "index child or as a referrer of a tagged image): `regstore gc -m` removes "
                    "it", digest=digest, repository=name,
                    key=layout.revision_link(name, digest)))
            if not repo.revisions and not repo.tags:
                self.findings.append(Finding(
                    "empty-repository", HINT, "repository has no manifests and no tags; the "
                    "catalog still lists it", repository=name,
                    key=layout.repository_dir(name)))
            for upload in sorted(repo.uploads):
                self._check_upload(name, upload, now)
        for key in sorted(self.vanished):
            self.findings.append(Finding("vanished", HINT, "removed while verify ran; not "
                                                           "verified", key=key))

    def _reached_from_tags(self, repo: Repository) -> set[str]:
        referrers: dict[str, list[str]] = defaultdict(list)
        for digest in repo.revisions:
            m = self.manifests.get(digest)
            if isinstance(m, Manifest) and m.subject is not None:
                referrers[m.subject.digest].append(digest)
        roots = [t.current for t in repo.tags.values() if t.current]
        for tag in repo.tags.values():
            if tag.bad_link:  # it may point at anything it ever held
                roots += list(tag.index & repo.revisions)
        live: set[str] = set()
        while roots:
            digest = roots.pop()
            if digest in live:
                continue
            live.add(digest)
            m = self.manifests.get(digest)
            if isinstance(m, Manifest):
                roots += [c.digest for c in m.children]
            roots += referrers.get(digest, [])
        return live

    def _check_upload(self, repo: str, upload: str, now: float) -> None:
        if not layout.is_upload_id(upload):
            self.findings.append(Finding(
                "stray-entry", HINT, f"unexpected entry {printable(upload)!r} among uploads",
                repository=repo, key=f"{layout.uploads_dir(repo)}/{printable(upload)}"))
            return
        key = layout.upload_dir(repo, upload)
        started = None
        try:
            text = self.store.read(key + "/startedat", 100).decode("ascii").strip()
            started = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except (FileNotFoundError, StoreError, UnicodeDecodeError, ValueError):
            try:
                st = self.store.stat(key)
            except StoreError:
                st = None
            started = st.mtime if st else None
        if started is None or now - started <= self.upload_max_age:
            return
        days = (now - started) / 86400
        self.findings.append(Finding(
            "stale-upload", HINT, f"upload started {days:.1f} days ago and never completed; the "
            "registry purges such uploads when it runs with upload purging, an offline store "
            "keeps them: remove it when no push is running", repository=repo, key=key))

    def _measure_coverage(self) -> None:
        cov, state = self.coverage, self.state
        state.keep_only(set(self.files))
        for digest, f in self.files.items():
            cov.blobs_total += 1
            cov.bytes_total += f.size
            last = state.last_verified(digest, f.size, f.mtime)
            if last is None:
                cov.never_verified += 1
            elif cov.oldest_verified_at is None or last < cov.oldest_verified_at:
                cov.oldest_verified_at = last
            if digest in self.hashed_as_manifest or state.known_bad(digest, f.size, f.mtime):
                continue
            if _before(last, state.pass_started):
                cov.blobs_due += 1
                cov.bytes_due += f.size
        cov.pass_complete = cov.blobs_due == 0
        cov.complete = not self.metadata_only and cov.blobs_hashed == cov.blobs_total


# --- helpers ------------------------------------------------------------------------------


def _finding_order(f: Finding) -> tuple[int, str, str, str, str]:
    """Errors first, then warnings, then hints; within them by kind, repository, digest, path."""
    return (SEVERITIES.index(f.severity), f.kind, f.repository or "", f.digest or "",
            f.key or "")


def _before(when: float | None, limit: float) -> bool:
    """Whether a verification at ``when`` (None: never) happened before ``limit``."""
    return when is None or when < limit


def _sorted_images(images: Iterable[str]) -> tuple[str, ...]:
    """Tags first (``repo:tag``), then untagged manifests (``repo@digest``), each sorted."""
    return tuple(sorted(set(images), key=lambda i: ("@" in i, i)))


def _inventory_findings(inv: Inventory) -> list[Finding]:
    """The inventory's findings, for a verify report. A bad ``current`` link is checked again
    by verify (as ``bad-link``, an error: the tag does not pull); the inventory's sentences
    that speak of the sweep (what gc keeps or will not sweep) end instead in what verify did."""
    result = []
    for f in inv.blocking + inv.findings:
        if f.kind == "bad-tag-link":
            continue
        if ("swept" in f.message or "kept" in f.message) and "; " in f.message:
            f = replace(f, message=f.message.rsplit("; ", 1)[0] + "; it was not verified")
        result.append(f)
    return result


def quarantine_key(digest: str) -> str:
    """What ``verify --quarantine`` moves for a corrupt blob: its whole directory.

    The registry answers "blob unknown" as soon as ``<dir>/data`` is absent (its blobStatter
    stats the data path), and a re-push heals it: committing an upload moves the new data into
    place only when nothing is at the data path (blobWriter.moveBlob; a corrupt ``data`` left
    there would be taken as "already uploaded" and never replaced), creating the directories.
    Moving the whole directory rather than ``data`` alone leaves no empty blob directory behind
    (which verify would report), is the unit the registry's GC and ``regstore gc`` remove, and
    so lets ``gc --quarantine`` share one record format and one ``restore``.
    """
    return layout.blob_dir(digest)


@dataclass
class QuarantineResult:
    """What :func:`quarantine_corrupt` did with each corrupt blob."""

    moved: list[tuple[CorruptBlob, Held]] = field(default_factory=list)
    skipped: list[tuple[CorruptBlob, str]] = field(default_factory=list)
    failed: list[tuple[CorruptBlob, str]] = field(default_factory=list)


def quarantine_corrupt(store: FilesystemStore, report: VerifyReport, quarantine: Quarantine,
                       command: str = "regstore verify") -> QuarantineResult:
    """Move the directory of every corrupt blob of ``report`` into ``quarantine``.

    Each blob is re-checked first: one whose data changed or went since it was hashed is
    skipped (the re-push may already have healed it). Never raises for one blob: failures are
    listed."""
    result = QuarantineResult()
    for blob in report.corrupt:
        try:
            st = store.stat(blob.key)
        except StoreError as exc:
            result.failed.append((blob, exc.message))
            continue
        if st is None:
            result.skipped.append((blob, "gone since it was hashed"))
            continue
        if st.size != blob.size or st.mtime != blob.mtime:
            result.skipped.append((blob, "its data changed since it was hashed"))
            continue
        try:
            held = quarantine.put(store, quarantine_key(blob.digest), kind="blob",
                                  digest=blob.digest, size=blob.size, command=command,
                                  reason=f"data hashes to {blob.actual}, not to its digest")
        except (StoreError, QuarantineError) as exc:
            result.failed.append((blob, str(exc)))
            continue
        result.moved.append((blob, held))
    return result
