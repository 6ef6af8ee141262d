"""Where the storage goes: per-repository usage (``regstore du``) and why a digest is kept
(``regstore explain``).

Both stand on the mark phase, so they agree with gc by construction:

* a repository *reaches* a blob when one of its live manifests (every linked revision and tag
  target, as for a plain ``gc``) reaches it through children and referrers, manifests included;
* ``unique`` bytes are reached by this repository only, ``shared`` bytes by it and at least
  one other; over the store, the unique bytes of every repository plus the shared blobs counted
  once make up exactly the reachable bytes;
* ``freed_by_m`` bytes are reached by this repository but marked by no repository under
  ``gc -m``: what ``-m`` would free here (a blob freed by two repositories counts in both).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from regstore import layout
from regstore.inventory import Inventory
from regstore.mark import MarkResult, Unusable
from regstore.manifest import Manifest
from regstore.store.base import Stat, Store, StoreError


@dataclass(frozen=True)
class RepositoryUsage:
    repository: str
    blobs: int
    reachable_bytes: int
    unique_bytes: int
    shared_bytes: int
    freed_by_m_bytes: int
    tags: int
    manifests: int

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class StoreUsage:
    repositories: list[RepositoryUsage]
    reachable_bytes: int  # every blob any repository reaches, counted once
    shared_bytes: int  # blobs reached by two or more repositories, counted once
    orphan_bytes: int  # blobs nothing reaches
    total_bytes: int  # every blob in the store
    sizes: dict[str, int] = field(default_factory=dict, repr=False)


def reached_by_repository(marks: MarkResult, inventory: Inventory) -> dict[str, set[str]]:
    """Every digest (manifests and blobs) the live manifests of each repository reach."""
    reached: dict[str, set[str]] = {}
    for name, live in marks.live.items():
        digests = set(live)
        repo = inventory.repositories[name]
        for digest in live:
            m = marks.manifests.get(digest)
            if isinstance(m, Manifest):
                digests.update(d.digest for d in m.blobs)
            digests.update(repo.signatures.get(digest, ()))
        reached[name] = digests
    return reached


def blob_sizes(store: Store, digests: set[str],
               listed: dict[str, Stat] | None = None) -> dict[str, int]:
    """The size of each blob's data; 0 for one that is absent or unreadable. ``listed``: sizes
    the listing already gave (an inventory's ``blob_stats``), asked of the store no more."""
    sizes = {}
    for digest in digests:
        if listed is not None and digest in listed:
            sizes[digest] = listed[digest].size
            continue
        try:
            st = store.stat(layout.blob_data(digest))
        except StoreError:
            st = None
        sizes[digest] = st.size if st else 0
    return sizes


def usage(store: Store, inventory: Inventory, plain: MarkResult,
          untagged: MarkResult) -> StoreUsage:
    """Per-repository usage from a plain mark and a ``-m`` mark of the same inventory."""
    reached = reached_by_repository(plain, inventory)
    owners: dict[str, int] = defaultdict(int)
    for digests in reached.values():
        for d in digests:
            owners[d] += 1
    present = set(inventory.blobs)
    sizes = blob_sizes(store, present, inventory.blob_stats)
    rows = []
    for name in sorted(reached):
        mine = reached[name] & present
        unique = sum(sizes[d] for d in mine if owners[d] == 1)
        shared = sum(sizes[d] for d in mine if owners[d] > 1)
        freed = sum(sizes[d] for d in untagged.marked.missing(mine))
        repo = inventory.repositories[name]
        rows.append(RepositoryUsage(name, len(mine), unique + shared, unique, shared, freed,
                                    sum(1 for t in repo.tags.values() if t.current),
                                    len(repo.revisions)))
    everything = set().union(*reached.values()) & present if reached else set()
    return StoreUsage(
        rows,
        reachable_bytes=sum(sizes[d] for d in everything),
        shared_bytes=sum(sizes[d] for d in everything if owners[d] > 1),
        orphan_bytes=sum(sizes[d] for d in present - everything),
        total_bytes=sum(sizes.values()),
        sizes=sizes)


@dataclass(frozen=True)
class Chain:
    """One way a live root reaches a digest: ``repo``, the root (a tag, or a digest for an
    untagged revision), and the manifests on the way, ending at the digest."""

    repository: str
    root: str
    path: tuple[str, ...]
    role: str  # what the digest is to the last manifest: manifest, config, layer, ...

    def __str__(self) -> str:
        untagged = self.root == self.path[0]
        start = f"{self.repository}@{self.root}" if untagged else f"{self.repository}:{self.root}"
        steps = " -> ".join(self.path[1:] if untagged else self.path)
        return f"{start} -> {steps} ({self.role})" if steps else f"{start} ({self.role})"


def explain(digest: str, inventory: Inventory, marks: MarkResult) -> list[Chain]:
    """Every shortest chain by which a live root of each repository reaches ``digest``, one
    per (repository, root): tags first, then untagged revisions. Empty: nothing live does."""
    chains = []
    for name in sorted(marks.live):
        repo = inventory.repositories[name]
        roots = sorted((t.name, t.current) for t in repo.tags.values() if t.current)
        tagged = {d for _, d in roots}
        # Untagged revisions are roots of their own in a plain mark; under -m only the young
        # ones the grace period keeps are.
        untagged = marks.young.get(name, set()) if marks.delete_untagged else repo.revisions
        roots += sorted((d, d) for d in untagged - tagged if d in marks.live[name])
        for label, root in roots:
            found = _path(root, digest, marks, repo.name, inventory)
            if found is not None:
                path, role = found
                chains.append(Chain(name, label, tuple(path), role))
    return chains


def _path(root: str, target: str, marks: MarkResult, repo: str,
          inventory: Inventory) -> tuple[list[str], str] | None:
    """Breadth-first from ``root`` through children and live referrers to ``target``."""
    referrers: dict[str, list[str]] = defaultdict(list)
    for d in marks.live.get(repo, ()):
        m = marks.manifests.get(d)
        if isinstance(m, Manifest) and m.subject is not None:
            referrers[m.subject.digest].append(d)
    parent: dict[str, str | None] = {root: None}
    queue = [root]
    while queue:
        current = queue.pop(0)
        m = marks.manifests.get(current)
        if current == target:
            return _trail(parent, current), "manifest"
        if isinstance(m, Unusable) or m is None:
            continue
        for d in m.blobs:
            if d.digest == target:
                return _trail(parent, current) + [target], d.role
        if target in inventory.repositories[repo].signatures.get(current, ()):
            return _trail(parent, current) + [target], "signature"
        for nxt in [c.digest for c in m.children] + referrers.get(current, []):
            if nxt not in parent:
                parent[nxt] = current
                queue.append(nxt)
    return None


def _trail(parent: dict[str, str | None], end: str) -> list[str]:
    trail = [end]
    while parent[trail[-1]] is not None:
        trail.append(parent[trail[-1]])  # type: ignore[arg-type]
    return list(reversed(trail))
