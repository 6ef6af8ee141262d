"""The sweep: a plan of what goes (a value), and applying it.

A plan is built from an inventory and a mark; ``--dry-run`` prints it, a real run applies it.
Applying happens in an order chosen so that a run killed at any instant leaves every live image
servable and the next run able to finish the job:

1. untagged revisions and their tag index entries (``-m``). Their blobs are still there, so a
   crash here leaves orphans for the next run, never a live revision without its manifest;
2. ``_layers`` links of blobs nothing live needs: a crash after this leaves orphan blobs
   without links, which the registry never served anyway;
3. the blobs themselves, each whole ``blobs/<alg>/<xx>/<hex>`` directory;
4. the directories these removals left empty.

Each item is re-checked just before it is removed; one that changed since the plan was made is
skipped and reported, never removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from regstore import layout
from regstore.inventory import Inventory
from regstore.mark import MarkResult
from regstore.store.base import Store, StoreError

BLOB = "blob"
LAYER_LINK = "layer-link"
MANIFEST = "manifest"
TAG_INDEX = "tag-index"
KINDS = (MANIFEST, TAG_INDEX, LAYER_LINK, BLOB)  # also the order of removal

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One thing a sweep removes: its kind, store key, digest, repository, size and why."""

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
    """Everything a sweep would remove, in removal order, and the marked count behind it."""

    items: list[PlanItem]
    marked: int
    blobs_total: int

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


def build_plan(store: Store, inventory: Inventory, marks: MarkResult) -> SweepPlan:
    """What a sweep removes given ``marks``: unmarked blobs (with their size), the ``_layers``
    links of digests nothing live needs (whether or not the blob still exists), and with
    ``-m`` the untagged revisions and their tag index entries."""
    items: list[PlanItem] = []
    for name in sorted(marks.dead):
        repo = inventory.repositories[name]
        for digest in sorted(marks.dead[name]):
            items.append(PlanItem(MANIFEST, layout.revision_dir(name, digest), digest,
                                  "untagged manifest, not reachable from a tag", name))
            for tag in sorted(repo.tags.values(), key=lambda t: t.name):
                if digest in tag.index and tag.valid_name:
                    items.append(PlanItem(TAG_INDEX,
                                          layout.tag_index_entry_dir(name, tag.name, digest),
                                          digest, "tag history entry of a removed manifest",
                                          name, tag.name))
    for name in sorted(inventory.repositories):
        for digest in sorted(inventory.repositories[name].layers - marks.marked):
            missing = digest not in inventory.blobs
            items.append(PlanItem(LAYER_LINK, layout.layer_link_dir(name, digest), digest,
                                  "link to a missing blob" if missing else
                                  "link to a blob nothing live references", name))
    for digest in sorted(inventory.blobs - marks.marked):
        st = _stat_quietly(store, layout.blob_data(digest))
        items.append(PlanItem(BLOB, layout.blob_dir(digest), digest,
                              "not referenced by any live manifest",
                              size=st.size if st else 0, mtime=st.mtime if st else None))
    return SweepPlan(items, len(marks.marked), len(inventory.blobs))


def _stat_quietly(store: Store, key: str):  # type: ignore[no-untyped-def]
    try:
        return store.stat(key)
    except StoreError:
        return None  # size unknown: reported as 0, the removal itself will say more


def apply_plan(store: Store, plan: SweepPlan, progress: Progress | None = None) -> ApplyResult:
    """Remove every item of ``plan`` in the crash-safe order, re-checking each first.

    Never raises for one item: a failure is recorded and the rest goes on, except that no
    layer link or blob is touched when any planned revision stayed (skipped or failed): its
    blobs may be live again.
    """
    result = ApplyResult()
    tick = progress or (lambda n: None)
    current_tags: dict[str, set[str]] = {}
    for kind in KINDS:
        if kind in (LAYER_LINK, BLOB) and any(
                i.kind == MANIFEST for i, _ in result.failed + result.skipped):
            # The plan counted that manifest's blobs as garbage; with it still linked they
            # may be live. The next run re-plans from what is there.
            for item in plan.of_kind(kind):
                result.skipped.append((item, "a manifest planned for removal stayed; "
                                             "run again to re-plan"))
            continue
        for item in plan.of_kind(kind):
            try:
                reason = _recheck(store, item, current_tags)
            except StoreError as exc:
                reason = f"could not re-check it ({exc.message})"
            if reason:
                result.skipped.append((item, reason))
            else:
                try:
                    store.remove_tree(item.key)
                except StoreError as exc:
                    result.failed.append((item, exc.message))
                else:
                    result.removed.append(item)
            tick(1)
    _remove_empty_dirs(store, result)
    return result


def _recheck(store: Store, item: PlanItem, current_tags: dict[str, set[str]]) -> str | None:
    """Why ``item`` must not be removed now, or None if it still may be."""
    if item.kind == MANIFEST:
        assert item.repository is not None
        if item.repository not in current_tags:
            current_tags[item.repository] = _tag_targets(store, item.repository)
        if item.digest in current_tags[item.repository]:
            return "a tag points at it now"
    if item.kind == BLOB:
        st = _stat_quietly(store, layout.blob_data(item.digest))
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
        else:
            stop = layout.tag_dir(item.repository or "", item.tag or "")
        try:
            store.remove_empty_dirs(parent, stop)
        except StoreError as exc:
            result.failed.append((item, f"removed, but its empty parent stays: {exc.message}"))
