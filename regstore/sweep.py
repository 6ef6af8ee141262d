"""The sweep: a plan of what goes (a value), and applying it.

A plan is built from an inventory and a mark; ``--dry-run`` prints it, a real run applies it.
Applying happens in an order chosen so that a run killed at any instant leaves every live image
servable and the next run able to finish the job:

1. the tag index entries of untagged revisions, then the revisions (``-m``). Their blobs are
   still there, so a crash here leaves orphans for the next run, never a live revision without
   its manifest; and never a history entry of a revision already gone, which no later plan
   would name (on S3, where nothing is held, a crash between the two is not undone);
2. a fresh look at the repositories: whatever a push linked or referenced since the plan was
   made is kept (concurrent pushes, distribution#3045);
3. ``_layers`` links of blobs nothing live needs: a crash after this leaves orphan blobs
   without links, which the registry never served anyway;
4. the blobs themselves, each whole ``blobs/<alg>/<xx>/<hex>`` directory;
5. a last look, after in-flight requests have had time to settle: anything a push started to
   use during the sweep is put back from the holding area (see :mod:`regstore.holding`);
6. stale uploads, then repositories left empty, then the directories all this left empty.

Each item is re-checked just before it is removed; one that changed since the plan was made is
skipped and reported, never removed. Items younger than the grace period never enter the plan:
they are listed as protected.

Items of one kind are re-checked in ``jobs`` threads and removed in batches (an object store
deletes up to 1,000 keys a request); the kinds still go strictly one after the other. Where
removal is direct and cannot be undone (an S3 store, which has no holding area), step 5 cannot
put anything back: the repositories are looked at again right before the blobs go instead, and
a blob something new needs is kept.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, NamedTuple, Protocol

from regstore import layout
from regstore.digestsets import DigestKeys, Digests
from regstore.inventory import Inventory, Repository
from regstore.mark import MarkResult
from regstore.pool import IOPool, stat_many
from regstore.store.base import Stat, Store, StoreError, stat_quietly

BLOB = "blob"
LAYER_LINK = "layer-link"
MANIFEST = "manifest"
TAG_INDEX = "tag-index"
UPLOAD = "upload"
REPOSITORY = "repository"
KINDS = (TAG_INDEX, MANIFEST, LAYER_LINK, BLOB, UPLOAD, REPOSITORY)  # the order of removal
_REPOSITORY_PARTS = ("_manifests", "_layers", "_uploads")

Progress = Callable[[int], None]


class PlanItem(NamedTuple):
    """One thing a sweep removes (or, in ``protected``, keeps for its age): its kind, store
    key, digest, repository, size and why. (A named tuple: a -m plan of a large store has
    tens of thousands, and a frozen dataclass is built at a fifth of the speed.)"""

    kind: str
    key: str
    digest: str
    reason: str
    repository: str | None = None
    tag: str | None = None
    size: int = 0
    mtime: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "digest": self.digest, "repository": self.repository,
                "tag": self.tag, "path": self.key, "size": self.size, "reason": self.reason}


@dataclass
class SweepPlan:
    """Everything a sweep would remove, in removal order, what the grace period protects, and
    the counts behind them."""

    items: list[PlanItem]
    marked: int
    blobs_total: int
    protected: list[PlanItem] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[PlanItem]:
        return [i for i in self.items if i.kind == kind]

    @property
    def blob_bytes(self) -> int:
        return sum(i.size for i in self.items if i.kind == BLOB)


@dataclass
class ApplyResult:
    removed: list[PlanItem] = field(default_factory=list)
    skipped: list[tuple[PlanItem, str]] = field(default_factory=list)
    failed: list[tuple[PlanItem, str]] = field(default_factory=list)


@dataclass(frozen=True)
class PlanOptions:
    """What a plan takes beyond the mark. Times are seconds since the epoch.

    ``protect_since``: nothing written at or after it enters the plan (the grace period).
    ``uploads_before``: uploads started before it are stale and go; None keeps every upload.
    ``empty_repositories``: remove repositories the sweep leaves with nothing in them.
    """

    protect_since: float | None = None
    uploads_before: float | None = None
    empty_repositories: bool = False
    jobs: int = 1  # threads to stat candidates in, once the store makes them wait
    processes: int = 1  # processes to share those stats among (regstore.pool.stat_many)


def build_plan(store: Store, inventory: Inventory, marks: MarkResult,
               options: PlanOptions = PlanOptions()) -> SweepPlan:
    """What a sweep removes given ``marks``: unmarked blobs (with their size), the ``_layers``
    links of digests nothing live needs (whether or not the blob still exists), with ``-m``
    the untagged revisions and their tag index entries, and as ``options`` say stale uploads
    and emptied repositories. Anything younger than ``options.protect_since`` is listed in
    ``protected`` instead, and so is a blob whose link is young, with all its links."""
    if options.empty_repositories and not inventory.tag_history:
        # Whether a tag's history holds only what goes is what makes a repository empty.
        raise ValueError("removing emptied repositories needs the tags' history in the "
                         "inventory")
    if not inventory.blobs_listed:
        raise ValueError("a plan needs the inventory's blob listing (inventory.list_blobs)")
    if inventory.sifted_by is not None and inventory.sifted_by is not marks.marked:
        # Sifted, the listing holds only what that mark left unmarked.
        raise ValueError("the inventory's blob listing was sifted by another mark")
    plan = SweepPlan([], len(marks.marked), len(inventory.blobs)
                     if inventory.blob_count is None else inventory.blob_count)
    young = options.protect_since

    def is_young(st: Stat | None) -> bool:
        return young is not None and (st is None or st.mtime >= young)

    for name in sorted(marks.young):
        for digest in sorted(marks.young[name]):
            plan.protected.append(PlanItem(MANIFEST, layout.revision_dir(name, digest), digest,
                                           "untagged, but younger than the grace period", name))
    for name in sorted(marks.dead):
        repo = inventory.repositories[name]
        held_by: dict[str, list[str]] = {}  # digest -> the tags whose history holds it
        for tag in sorted(repo.tags.values(), key=lambda t: t.name):
            if tag.valid_name:
                for digest in tag.index & marks.dead[name]:
                    held_by.setdefault(digest, []).append(tag.name)
        for digest in sorted(marks.dead[name]):
            plan.items.append(PlanItem(MANIFEST, layout.revision_dir(name, digest), digest,
                                       "untagged manifest, not reachable from a tag", name))
            for tag_name in held_by.get(digest, ()):
                plan.items.append(PlanItem(
                    TAG_INDEX, layout.tag_index_entry_dir(name, tag_name, digest), digest,
                    "tag history entry of a removed manifest", name, tag_name))
    garbage = sorted(marks.marked.missing(inventory.blobs))
    links = _unmarked_links(store, inventory, marks, options.jobs)
    listed = inventory.blob_stats or {}
    # One stat per candidate not listed with its time (on a cold disk each waits on a seek).
    # Each key built once: for the stat and for the plan item.
    blob_dirs = {d: layout.blob_dir(d) for d in garbage}
    link_dirs = {link: layout.layer_link_dir(*link) for link in links}
    unlisted_blobs = [d for d in garbage if d not in listed]
    unlisted_links = [(name, digest) for name, digest in links
                      if digest not in inventory.repositories[name].layer_mtimes] \
        if young is not None else []
    stats = stat_many(store, [blob_dirs[d] + "/data" for d in unlisted_blobs] +
                      [link_dirs[link] + "/link" for link in unlisted_links],
                      options.jobs, options.processes)
    # A blob directory without data (the registry creates the directory, then renames the
    # data in) is aged by the directory itself.
    fresh = dict(zip(unlisted_blobs, stats))
    dataless = [d for d in unlisted_blobs if fresh[d] is None]
    fresh.update(zip(dataless, stat_many(store, [blob_dirs[d] for d in dataless],
                                         options.jobs)))
    blob_stats = {d: listed.get(d) or fresh[d] for d in garbage}
    held_back = {d for d, st in blob_stats.items() if is_young(st)}
    link_stats = dict(zip(unlisted_links, stats[len(unlisted_blobs):]))
    if young is not None:
        for name, digest in links:
            mtime = inventory.repositories[name].layer_mtimes.get(digest)
            st = Stat(0, mtime) if mtime is not None else link_stats[name, digest]
            if is_young(st):
                held_back.add(digest)  # a push may be using it right now
    # (sifted, the listing has every unmarked blob: a linked one if listed)
    blobless = set(inventory.blobs.missing(list({digest for _, digest in links})))
    for name, digest in links:
        item = PlanItem(LAYER_LINK, link_dirs[name, digest], digest,
                        "link to a missing blob" if digest in blobless else
                        "link to a blob nothing live references", name)
        if digest in held_back:
            plan.protected.append(_protected(item, "it or its blob is younger than the grace "
                                                   "period"))
        else:
            plan.items.append(item)
    for digest, st in blob_stats.items():
        item = PlanItem(BLOB, blob_dirs[digest], digest,
                        "not referenced by any live manifest",
                        size=st.size if st and not st.is_dir else 0,
                        mtime=st.mtime if st else None)
        if digest in held_back:
            plan.protected.append(_protected(item, "it or a link to it is younger than the "
                                                   "grace period"))
        else:
            plan.items.append(item)
    if options.uploads_before is not None:
        for name in sorted(inventory.repositories):
            plan.items.extend(_stale_uploads(store, inventory.repositories[name],
                                             options.uploads_before))
    if options.empty_repositories:
        plan.items.extend(_emptied_repositories(inventory, marks, plan))
    return plan


def _unmarked_links(store: Store, inventory: Inventory, marks: MarkResult,
                    jobs: int = 1) -> list[tuple[str, str]]:
    """Every layer link to a digest nothing live reaches, as (repository, digest), sorted.
    The links of all repositories are looked up in one pass: a store has millions.

    Where the inventory kept the links' keys only (``take_inventory(compact=True)``), the
    links whose keys are not marked are named by listing their repository's links again (in
    ``jobs`` threads): one repository in seven at a million blobs. A link that listing cannot
    name (removed since, or unreadable now) is left where it is.
    """
    names = sorted(inventory.repositories)
    layers = [inventory.repositories[name].layers for name in names]
    if not inventory.compact:
        # In order: by repository, then digest.
        return [(names[r], digest) for r, digest in
                marks.marked.missing_in(layers)]  # type: ignore[arg-type]
    unmarked: dict[int, set[int]] = {}
    for r, key in marks.marked.absent_in(layers):  # type: ignore[arg-type]
        unmarked.setdefault(r, set()).add(key)
    pool = IOPool(jobs, store.waits)
    try:
        named = pool.map(lambda r: _links_with_keys(store, names[r], unmarked[r]),
                         list(unmarked))
    finally:
        pool.close()
    return [(names[r], digest) for r, found in zip(unmarked, named) for digest in sorted(found)]


def _links_with_keys(store: Store, repo: str, keys: set[int]) -> list[str]:
    """The digests linked in ``repo``'s ``_layers`` whose keys are among ``keys``, listed
    now."""
    top = layout.layers_dir(repo)
    found: list[str] = []
    try:
        for alg in store.list_dir(top):
            if alg.kind != "dir":
                continue
            links = [e.name for e in store.list_dir(f"{top}/{alg.name}") if e.kind == "dir"]
            found += [d for name in DigestKeys.hashes_with_keys(links, keys)
                      if (d := layout.digest_from_parts(alg.name, name)) is not None]
    except StoreError:
        pass  # left unnamed, the links stay: the next run names them
    return found


def _protected(item: PlanItem, why: str) -> PlanItem:
    return item._replace(reason=f"kept: {why}")


def upload_started(store: Store, repo: str, upload_id: str) -> float | None:
    """When an upload started: its ``startedat`` file, as the registry's purge reads it, or
    else the newest modification time of its data. None when neither can be read."""
    base = layout.upload_dir(repo, upload_id)
    try:
        text = store.read(base + "/startedat", 100).decode("ascii").strip()
        started = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (FileNotFoundError, StoreError, UnicodeDecodeError, ValueError):
        started = None
    data = stat_quietly(store, base + "/data")
    # A chunked upload that is still being written is not stale, whatever it started as.
    if data is not None:
        return max(started or 0.0, data.mtime)
    return started


def _stale_uploads(store: Store, repo: Repository, before: float) -> list[PlanItem]:
    items = []
    for upload_id in sorted(repo.uploads):
        if not layout.is_upload_id(upload_id):
            continue
        started = upload_started(store, repo.name, upload_id)
        if started is not None and started < before:
            data = stat_quietly(store, layout.upload_dir(repo.name, upload_id) + "/data")
            items.append(PlanItem(UPLOAD, layout.upload_dir(repo.name, upload_id), upload_id,
                                  "upload abandoned before the purge age", repo.name,
                                  size=data.size if data else 0))
    return items


def _emptied_repositories(inventory: Inventory, marks: MarkResult,
                          plan: SweepPlan) -> list[PlanItem]:
    """Repositories the plan leaves with no revision, tag, layer link or upload
    (distribution#2314). Nested repositories below one are not touched."""
    going = {(i.kind, i.repository, i.digest) for i in plan.items}
    links: dict[str | None, list[str]] = {}
    for i in plan.items:
        if i.kind == LAYER_LINK:
            links.setdefault(i.repository, []).append(i.digest)
    items = []
    for name in sorted(inventory.repositories):
        repo = inventory.repositories[name]
        if any(t.current or t.bad_link or not t.valid_name for t in repo.tags.values()):
            continue
        if any(i.repository == name and i.kind != REPOSITORY for i in plan.protected):
            continue
        if all((MANIFEST, name, d) in going for d in repo.revisions) and \
                _every_link_goes(repo, links.get(name, [])) and \
                all((UPLOAD, name, u) in going for u in repo.uploads) and \
                all(t.index <= marks.dead.get(name, set()) for t in repo.tags.values()):
            items.append(PlanItem(REPOSITORY, layout.repository_dir(name), "",
                                  "repository left with nothing in it", name))
    return items


def _every_link_goes(repo: Repository, going: list[str]) -> bool:
    """Whether the links ``going`` (digests) are all of ``repo``'s layer links."""
    if isinstance(repo.layers, Digests):
        return set(going).issuperset(repo.layers)
    # Keys only (take_inventory(compact=True)): every key is that of a link going.
    return DigestKeys.of(going).covers(repo.layers)


class Remover(Protocol):
    """How an item leaves the store: deleted at once, or held (see regstore.holding)."""

    def remove(self, kind: str, key: str, digest: str, repository: str | None, size: int,
               reason: str) -> None: ...


class DirectRemover:
    """Removes at once, in batches (:meth:`Store.remove_trees`)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def remove(self, kind: str, key: str, digest: str, repository: str | None, size: int,
               reason: str) -> None:
        self.store.remove_tree(key)

    def remove_many(self, keys: list[str]) -> dict[str, str]:
        return self.store.remove_trees(keys) if keys else {}


Rescan = Callable[[set[str]], set[str]]


BATCH = 1000  # items removed per batch (an object store's DeleteObjects limit)


def apply_plan(store: Store, plan: SweepPlan, *, remover: Remover | None = None,
               rescan: Rescan | None = None, give_back: Callable[[set[str]], list[str]] |
               None = None, settle: float = 0.0,
               progress: Progress | None = None, jobs: int = 1) -> ApplyResult:
    """Remove every item of ``plan`` in the crash-safe order, re-checking each first (in
    ``jobs`` threads) and removing them in batches.

    ``rescan(digests)`` answers which of ``digests`` something new in the repositories now
    needs; it is asked before layer links and blobs go, and again ``settle`` seconds after,
    when ``give_back(digests)`` puts back held items that turned out to be needed. Without
    ``give_back`` (direct removal, which cannot be undone) it is asked again right before the
    blobs go instead. Never raises for one item: a failure is recorded and the rest goes on,
    except that no layer link or blob is touched when any planned revision stayed (skipped or
    failed): its blobs may be live again, and no repository is removed when anything of it
    stayed.
    """
    result = ApplyResult()
    remover = remover or DirectRemover(store)
    tick = progress or (lambda n: None)
    candidates = {i.digest for i in plan.items if i.kind in (LAYER_LINK, BLOB)}
    needed: set[str] = set()
    pool = ThreadPoolExecutor(max_workers=jobs) if jobs > 1 else None
    try:
        for kind in KINDS:
            items = plan.of_kind(kind)
            if kind in (LAYER_LINK, BLOB) and any(
                    i.kind == MANIFEST for i, _ in result.failed + result.skipped):
                # The plan counted that manifest's blobs as garbage; with it still linked they
                # may be live. The next run re-plans from what is there.
                result.skipped.extend((i, "a manifest planned for removal stayed; run again "
                                          "to re-plan") for i in items)
                continue
            if kind == LAYER_LINK and rescan is not None and candidates:
                needed = rescan(candidates)
            if kind == BLOB and rescan is not None and give_back is None and candidates:
                needed |= _look_again_before_blobs(result, candidates, needed, rescan)
            if kind == UPLOAD and rescan is not None and give_back is not None:
                _settle_and_give_back(result, candidates, rescan, give_back, settle)
            if kind == REPOSITORY:
                kept = {i.repository for i, _ in result.skipped + result.failed}
                items = [i for i in items if i.repository not in kept]
            reasons = _rechecks(store, items, needed, pool)
            for start in range(0, len(items), BATCH):
                batch = items[start:start + BATCH]
                going = []
                for item, reason in zip(batch, reasons[start:start + BATCH]):
                    if reason:
                        result.skipped.append((item, reason))
                        tick(1)
                    else:
                        going.append(item)
                failures = _remove_batch(remover, going)
                for item in going:
                    if item.key in failures:
                        result.failed.append((item, failures[item.key]))
                    else:
                        result.removed.append(item)
                    tick(1)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    _remove_empty_dirs(store, result)
    return result


def _look_again_before_blobs(result: ApplyResult, candidates: set[str], needed: set[str],
                             rescan: Rescan) -> set[str]:
    """Direct removal: which candidates something new needs right before the blobs go. A
    layer link removed in this run whose digest is one of them cannot be put back; it is
    reported as failed (the image needs a re-push)."""
    now = rescan(candidates)
    for item in [i for i in result.removed if i.kind == LAYER_LINK and i.digest in now - needed]:
        result.removed.remove(item)
        result.failed.append((item, "removed, but a push started using it during the sweep: "
                                    "re-push the image"))
    return now


def _rechecks(store: Store, items: list[PlanItem], needed: set[str],
              pool: ThreadPoolExecutor | None) -> list[str | None]:
    """Why each item must not be removed now (None where it still may be), in order."""
    current_tags: dict[str, set[str] | str] = {}
    repos = sorted({i.repository for i in items if i.kind in (MANIFEST, TAG_INDEX) and
                    i.repository})

    def targets(repo: str) -> set[str] | str:
        try:
            return _tag_targets(store, repo)
        except StoreError as exc:
            return f"could not re-check it ({exc.message})"

    current_tags = dict(zip(repos, pool.map(targets, repos) if pool else map(targets, repos)))

    def why(item: PlanItem) -> str | None:
        if item.digest in needed and item.kind in (LAYER_LINK, BLOB):
            return "something pushed since the plan needs it"
        try:
            return _recheck(store, item, current_tags)
        except StoreError as exc:
            return f"could not re-check it ({exc.message})"

    if pool is None or len(items) < 2:
        return [why(i) for i in items]
    return list(pool.map(why, items))


def _remove_batch(remover: Remover, items: list[PlanItem]) -> dict[str, str]:
    """Remove ``items``; return the keys of those that failed, with why."""
    failures: dict[str, str] = {}
    many = getattr(remover, "remove_many", None)
    if many is not None:
        keys: list[str] = []
        owner: dict[str, str] = {}
        for item in items:
            for key in _keys_of(item):
                keys.append(key)
                owner[key] = item.key
        try:
            failed = many(keys)
        except StoreError as exc:  # e.g. a read-only store: every item of the batch failed
            failed = {key: exc.message for key in keys}
        for key, why in failed.items():
            failures.setdefault(owner.get(key, key), why)
        return failures
    for item in items:
        try:
            _remove(remover, item)
        except StoreError as exc:
            failures[item.key] = exc.message
    return failures


def _keys_of(item: PlanItem) -> list[str]:
    if item.kind != REPOSITORY:
        return [item.key]
    # Only the repository's own parts: a nested repository below it stays.
    return [f"{item.key}/{part}" for part in _REPOSITORY_PARTS]


def _remove(remover: Remover, item: PlanItem) -> None:
    for key in _keys_of(item):
        remover.remove(item.kind, key, item.digest if item.kind != REPOSITORY else "",
                       item.repository, item.size if item.kind != REPOSITORY else 0,
                       item.reason)


def _settle_and_give_back(result: ApplyResult, candidates: set[str], rescan: Rescan,
                          give_back: Callable[[set[str]], list[str]], settle: float) -> None:
    # A push that checked a blob just before it was held may still be writing its manifest:
    # wait for such requests to finish, then look again and put back what they need.
    time.sleep(settle)
    needed = rescan(candidates)
    if not needed:
        return
    returned = set(give_back(needed))
    kept = [i for i in result.removed if i.kind in (LAYER_LINK, BLOB) and i.key in returned]
    for item in kept:
        result.removed.remove(item)
        result.skipped.append((item, "a push started using it during the sweep: put back"))


def _recheck(store: Store, item: PlanItem,
             current_tags: dict[str, set[str] | str]) -> str | None:
    """Why ``item`` must not be removed now, or None if it still may be."""
    if item.kind in (MANIFEST, TAG_INDEX):
        assert item.repository is not None
        targets = current_tags[item.repository]
        if isinstance(targets, str):
            return targets
        if item.digest in targets:
            return "a tag points at it now"
    if item.kind == BLOB:
        st = stat_quietly(store, layout.blob_data(item.digest))
        if st is not None and item.mtime is not None and st.mtime != item.mtime:
            return "its data changed since the plan was made"
    return None


def _tag_targets(store: Store, repo: str) -> set[str]:
    targets = set()
    top = layout.tags_dir(repo)
    for f in store.walk(top):
        if f.key.endswith("/current/link"):
            try:
                targets.add(layout.parse_link(store.read(f.key, 1024)))
            except (FileNotFoundError, layout.InvalidName):
                continue
    return targets


def _remove_empty_dirs(store: Store, result: ApplyResult) -> None:
    for item in result.removed:
        parent = item.key.rsplit("/", 1)[0]
        if item.kind == BLOB:
            stop = parent.rsplit("/", 1)[0]  # keep blobs/<alg>
        elif item.kind == LAYER_LINK:
            stop = layout.layers_dir(item.repository or "")
        elif item.kind == MANIFEST:
            stop = layout.revisions_dir(item.repository or "")
        elif item.kind == UPLOAD:
            stop = layout.uploads_dir(item.repository or "")
        elif item.kind == REPOSITORY:
            parent, stop = item.key, layout.REPOSITORIES
        else:
            stop = layout.tag_dir(item.repository or "", item.tag or "")
        try:
            store.remove_empty_dirs(parent, stop)
        except StoreError as exc:
            result.failed.append((item, f"removed, but its empty parent stays: {exc.message}"))
