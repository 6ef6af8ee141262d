"""What a store holds: repositories, their revisions, tags and layer links, and the blobs.

The inventory is one linear pass over the tree. The digest of a revision or layer link is the
name of its directory, so those link files are not read here (verify reads them); only tag
``current`` links are, since their content is the point. Problems that leave regstore unable to
know what is live (an unreadable subtree, a repository directory it cannot name) go to
``blocking``: a mark built on such an inventory is incomplete and no sweep may follow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from regstore import layout
from regstore.findings import ERROR, HINT, WARNING, Finding, printable
from regstore.store.base import Store, StoreError

Progress = Callable[[int], None]

_REPO_PARTS = ("_manifests", "_layers", "_uploads")


@dataclass
class Tag:
    """A tag: where ``current`` points (None if its link is absent or unreadable) and the
    digests its index holds."""

    name: str
    key: str  # the tag's directory
    current: str | None = None
    index: set[str] = field(default_factory=set)
    valid_name: bool = True
    bad_link: bool = False  # current exists but does not hold a digest


@dataclass
class Repository:
    name: str
    revisions: set[str] = field(default_factory=set)
    # revision -> signature blobs linked under it (stores first written by registry 2.0-2.4)
    signatures: dict[str, set[str]] = field(default_factory=dict)
    tags: dict[str, Tag] = field(default_factory=dict)
    layers: set[str] = field(default_factory=set)
    uploads: list[str] = field(default_factory=list)
    has_tags_dir: bool = False


@dataclass
class Inventory:
    repositories: dict[str, Repository] = field(default_factory=dict)
    blobs: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    blocking: list[Finding] = field(default_factory=list)

    def note(self, finding: Finding) -> None:
        (self.blocking if finding.severity == ERROR else self.findings).append(finding)


def take_inventory(store: Store, progress: Progress | None = None) -> Inventory:
    """List every repository and blob of ``store`` into an :class:`Inventory`.

    ``progress`` is called with a count of entries seen, for a progress bar.
    """
    inv = Inventory()
    tick = progress or (lambda n: None)
    _scan_repositories(store, inv, tick)
    _scan_blobs(store, inv, tick)
    return inv


def scan_repositories(store: Store) -> Inventory:
    """The repositories part of an inventory only (no blob listing), for re-checks."""
    inv = Inventory()
    _scan_repositories(store, inv, lambda n: None)
    return inv


def _unreadable(inv: Inventory, exc: StoreError, what: str) -> None:
    inv.note(Finding("unreadable", ERROR,
                     f"cannot read {what} ({exc.message}); regstore cannot know what it "
                     "references, so nothing will be swept: fix the permissions or the disk",
                     key=exc.key))


def _scan_repositories(store: Store, inv: Inventory, tick: Progress) -> None:
    stack: list[tuple[str, str, bool]] = [(layout.REPOSITORIES, "", True)]
    while stack:
        key, name, valid = stack.pop()
        try:
            entries = store.list_dir(key)
        except StoreError as exc:
            _unreadable(inv, exc, "a repository directory")
            continue
        tick(len(entries))
        kinds = {e.name: e.kind for e in entries}
        if name and any(kinds.get(p) == "dir" for p in _REPO_PARTS):
            if valid:
                _scan_repository(store, inv, Repository(name), kinds, tick)
            else:
                inv.note(Finding(
                    "invalid-repository-name", ERROR,
                    f"repository directory {printable(name)!r} is not a valid repository name; "
                    "the registry cannot serve it and regstore will not guess what it holds: "
                    "rename or remove it, then run again", key=key))
        for entry in entries:
            if entry.name.startswith("_"):
                if name and entry.name in _REPO_PARTS and entry.kind == "dir":
                    continue
                inv.note(Finding("stray-entry", HINT,
                                 f"unexpected entry {printable(entry.name)!r} ignored",
                                 key=f"{key}/{entry.name}"))
            elif entry.kind == "dir":
                child = f"{name}/{entry.name}" if name else entry.name
                ok = valid and layout.is_repository_component(entry.name)
                stack.append((f"{key}/{entry.name}", child, ok))
            elif entry.kind == "symlink":
                inv.note(Finding("symlink", ERROR,
                                 f"symlink {printable(entry.name)!r} in the repositories tree is "
                                 "not followed; what it points at cannot be marked, so nothing "
                                 "will be swept: replace it by the real directory",
                                 key=f"{key}/{entry.name}"))
            else:
                inv.note(Finding("stray-entry", HINT,
                                 f"unexpected file {printable(entry.name)!r} ignored",
                                 key=f"{key}/{entry.name}"))


def _scan_repository(store: Store, inv: Inventory, repo: Repository,
                     kinds: dict[str, str], tick: Progress) -> None:
    inv.repositories[repo.name] = repo
    base = layout.repository_dir(repo.name)
    if kinds.get("_manifests") == "dir":
        _scan_revisions(store, inv, repo, tick)
        _scan_tags(store, inv, repo, tick)
    if kinds.get("_layers") == "dir":
        _scan_layers(store, inv, repo, tick)
    if kinds.get("_uploads") == "dir":
        try:
            repo.uploads = [e.name for e in store.list_dir(f"{base}/_uploads")]
        except StoreError as exc:
            inv.note(Finding("unreadable", WARNING, f"cannot list uploads ({exc.message})",
                             repository=repo.name, key=exc.key))


def _scan_revisions(store: Store, inv: Inventory, repo: Repository, tick: Progress) -> None:
    top = layout.revisions_dir(repo.name)
    try:
        files = list(store.walk(top))
    except StoreError as exc:
        _unreadable(inv, exc, f"the revisions of {repo.name}")
        return
    tick(len(files))
    for f in files:
        parts = f.key[len(top) + 1:].split("/")
        digest = layout.digest_from_parts(parts[0], parts[1]) if len(parts) >= 3 else None
        if digest and f.kind == "file" and parts[2:] == ["link"]:
            repo.revisions.add(digest)
            continue
        if digest and f.kind == "file" and len(parts) == 6 and parts[2] == "signatures" \
                and parts[5] == "link":
            signature = layout.digest_from_parts(parts[3], parts[4])
            if signature:
                repo.signatures.setdefault(digest, set()).add(signature)
                continue
        if f.kind == "symlink":
            inv.note(Finding("symlink", ERROR,
                             "symlink among revisions is not followed; nothing will be swept "
                             "until it is replaced by the real file",
                             repository=repo.name, key=f.key))
        else:
            inv.note(Finding("stray-entry", HINT, "unexpected entry among revisions ignored",
                             repository=repo.name, key=f.key))
    # A revision directory that lost its link file is not a revision the registry serves;
    # nothing is inferred from it.


def _scan_tags(store: Store, inv: Inventory, repo: Repository, tick: Progress) -> None:
    top = layout.tags_dir(repo.name)
    try:
        repo.has_tags_dir = bool(store.stat(top))
        files = list(store.walk(top))
    except StoreError as exc:
        _unreadable(inv, exc, f"the tags of {repo.name}")
        return
    tick(len(files))
    for f in files:
        rel = f.key[len(top) + 1:]
        tag_name, _, rest = rel.partition("/")
        tag = repo.tags.get(tag_name)
        if tag is None:
            tag = repo.tags[tag_name] = Tag(tag_name, f"{top}/{tag_name}",
                                            valid_name=layout.is_tag(tag_name))
        parts = rest.split("/")
        if parts == ["current", "link"] and f.kind == "file":
            tag.current = _read_current(store, inv, repo, tag, f.key)
            continue
        if len(parts) == 4 and parts[0] == "index" and parts[3] == "link" and f.kind == "file":
            digest = layout.digest_from_parts(parts[1], parts[2])
            if digest:
                tag.index.add(digest)
                continue
        inv.note(Finding("stray-entry", HINT, "unexpected entry among tags ignored",
                         repository=repo.name, key=f.key))
    for tag in repo.tags.values():
        if not tag.valid_name:
            inv.note(Finding("invalid-tag-name", WARNING,
                             f"tag directory {printable(tag.name)!r} is not a valid tag name; "
                             "what it points at is kept", repository=repo.name, key=tag.key))


def _read_current(store: Store, inv: Inventory, repo: Repository, tag: Tag, key: str) -> str | None:
    try:
        return layout.parse_link(store.read(key, 1024))
    except FileNotFoundError:
        return None
    except (StoreError, layout.InvalidName) as exc:
        reason = exc.message if isinstance(exc, StoreError) else str(exc)
        # Which manifest the tag holds is unknown: the mark keeps every digest of its index.
        tag.bad_link = True
        inv.note(Finding("bad-tag-link", WARNING,
                         f"tag {printable(tag.name)!r}: current link unusable ({reason}); "
                         "every manifest in the tag's history is kept: fix or delete the tag",
                         repository=repo.name, key=key,
                         images=(f"{repo.name}:{printable(tag.name)}",)))
        return None


def _scan_layers(store: Store, inv: Inventory, repo: Repository, tick: Progress) -> None:
    top = layout.layers_dir(repo.name)
    try:
        for alg in store.list_dir(top):
            entries = store.list_dir(f"{top}/{alg.name}") if alg.kind == "dir" else []
            tick(len(entries))
            for entry in entries:
                digest = layout.digest_from_parts(alg.name, entry.name)
                if digest and entry.kind == "dir":
                    repo.layers.add(digest)
                else:
                    inv.note(Finding("stray-entry", HINT, "unexpected entry among layer links",
                                     repository=repo.name, key=f"{top}/{alg.name}/{entry.name}"))
            if alg.kind != "dir":
                inv.note(Finding("stray-entry", HINT, "unexpected entry among layer links",
                                 repository=repo.name, key=f"{top}/{alg.name}"))
    except StoreError as exc:
        # Layer links keep nothing alive, but a sweep would act on an incomplete listing.
        _unreadable(inv, exc, f"the layer links of {repo.name}")


def _scan_blobs(store: Store, inv: Inventory, tick: Progress) -> None:
    top = layout.BLOBS
    try:
        algorithms = store.list_dir(top)
        for alg in algorithms:
            if alg.kind != "dir" or alg.name not in layout.DIGEST_HEX_LENGTH:
                inv.note(Finding("stray-entry", HINT, "unexpected entry in the blob store",
                                 key=f"{top}/{alg.name}"))
                continue
            for prefix in store.list_dir(f"{top}/{alg.name}"):
                where = f"{top}/{alg.name}/{prefix.name}"
                if prefix.kind != "dir":
                    inv.note(Finding("stray-entry", HINT, "unexpected entry in the blob store",
                                     key=where))
                    continue
                entries = store.list_dir(where)
                tick(len(entries))
                for entry in entries:
                    digest = layout.digest_from_parts(alg.name, entry.name)
                    if digest and entry.kind == "dir" and entry.name[:2] == prefix.name:
                        inv.blobs.add(digest)
                    elif entry.kind == "symlink":
                        inv.note(Finding("symlink", WARNING,
                                         "symlink in the blob store is not followed and never "
                                         "removed", key=f"{where}/{entry.name}"))
                    else:
                        inv.note(Finding("stray-entry", HINT,
                                         "unexpected entry in the blob store (not a blob "
                                         "directory under its own prefix); left alone",
                                         key=f"{where}/{entry.name}"))
    except StoreError as exc:
        _unreadable(inv, exc, "the blob store")
