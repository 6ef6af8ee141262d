"""Properties of gc on random stores (hypothesis, deterministic profile in CI).

The model that generates a store also says, independently of regstore's mark code, which
manifests are live and which blobs they reach.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from regstore import layout
from regstore.cli import main
from regstore.manifest import DOCKER_LIST, OCI_INDEX, OCI_MANIFEST, SCHEMA2
from tests.builders import StoreBuilder, age_store

REPOS = ["a", "b/c", "d"]


@dataclass
class Model:
    """What was pushed: per repository its manifests (digest -> blobs, children, subject),
    its tags, what was deleted through the API, and the orphan blobs."""

    manifests: dict[str, dict[str, dict]] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    deleted: dict[str, set[str]] = field(default_factory=dict)
    orphans: set[str] = field(default_factory=set)

    def live(self, delete_untagged: bool) -> dict[str, set[str]]:
        out = {}
        for repo, manifests in self.manifests.items():
            linked = set(manifests) - self.deleted.get(repo, set())
            roots = set(self.tags.get(repo, {}).values())
            if not delete_untagged:
                roots |= linked
            live, queue = set(), list(roots)
            while queue:
                d = queue.pop()
                if d in live:
                    continue
                live.add(d)
                queue += manifests[d]["children"]
                if delete_untagged:
                    queue += [r for r in linked if manifests[r]["subject"] == d]
            out[repo] = live
        return out

    def reachable_blobs(self, delete_untagged: bool) -> set[str]:
        blobs = set()
        for repo, live in self.live(delete_untagged).items():
            for d in live:
                blobs.add(d)
                blobs |= set(self.manifests[repo][d]["blobs"])
        return blobs


@st.composite
def stores(draw):
    layers = [f"layer {i}".encode() * draw(st.integers(1, 3)) for i in range(6)]
    ops = []
    for repo in draw(st.lists(st.sampled_from(REPOS), min_size=1, max_size=3, unique=True)):
        n = draw(st.integers(1, 6))
        for i in range(n):
            kind = draw(st.sampled_from(["image", "image", "index", "referrer"]))
            ops.append((repo, kind, draw(st.lists(st.integers(0, 5), min_size=1, max_size=3)),
                        draw(st.integers(0, 1000)), draw(st.sampled_from([None, "t1", "t2", "t3"])),
                        draw(st.booleans()) and draw(st.booleans())))
    orphans = draw(st.integers(0, 3))
    delete_untagged = draw(st.booleans())
    return layers, ops, orphans, delete_untagged


def build(root: Path, layers, ops, orphans) -> Model:
    b = StoreBuilder(root)
    model = Model()
    for repo, kind, picks, salt, tag, delete in ops:
        mine = model.manifests.setdefault(repo, {})
        earlier = sorted(mine)
        if kind == "index" and earlier:
            children = sorted({earlier[p % len(earlier)] for p in picks})
            media = DOCKER_LIST if salt % 2 else OCI_INDEX
            if media == DOCKER_LIST:  # a docker list holds images only
                children = [c for c in children if not mine[c]["children"]] or children[:0]
            d = b.index(repo, children, media_type=media)
            mine[d] = {"blobs": [], "children": children, "subject": None}
        else:
            subject = earlier[salt % len(earlier)] if kind == "referrer" and earlier else None
            chosen = [layers[p] for p in picks] + [f"unique {repo} {salt}".encode()]
            d = b.image(repo, chosen, media_type=OCI_MANIFEST if subject or salt % 2 else SCHEMA2,
                        subject=subject, config=f"config {repo} {salt}".encode())
            blobs = [hashlib_digest(x) for x in chosen + [f"config {repo} {salt}".encode()]]
            mine.setdefault(d, {"blobs": blobs, "children": [], "subject": subject})
        if tag:
            b.tag(repo, tag, d)
            model.tags.setdefault(repo, {})[tag] = d
        elif delete and d not in model.tags.get(repo, {}).values():
            # a manifest deleted through the API: its revision link goes, its blobs stay
            os.remove(b.path(layout.revision_link(repo, d)))
            model.deleted.setdefault(repo, set()).add(d)
    for i in range(orphans):
        model.orphans.add(b.blob(f"orphan {i}".encode()))
    age_store(root)
    return model


def hashlib_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def gc(root: Path, *args: str) -> dict:
    out, err = io.StringIO(), io.StringIO()
    code = main(["gc", "--json", "--force", "--min-age", "0", "--max-delete-fraction", "1",
                 "--jobs", "1",
                 "--root", str(root), *args], out=out, err=err)
    report = json.loads(out.getvalue())
    assert code == 0, (report, err.getvalue())
    return report


def verify_errors(root: Path) -> set[tuple[str, str | None, str | None]]:
    out = io.StringIO()
    main(["verify", "--json", "--no-state", "--jobs", "1", "--root", str(root)], out=out,
         err=io.StringIO())
    return {(f["kind"], f["repository"], f["digest"])
            for f in json.loads(out.getvalue())["findings"] if f["severity"] == "error"}


def tree(root: Path) -> dict[str, bytes | None]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".regstore", "q")]
        found[os.path.relpath(dirpath, root)] = None
        for n in filenames:
            found[os.path.relpath(os.path.join(dirpath, n), root)] = Path(dirpath, n).read_bytes()
    return found


@given(stores())
def test_gc_never_removes_what_a_live_manifest_reaches(case):
    layers, ops, orphans, delete_untagged = case
    m = ["-m"] if delete_untagged else []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build(root, layers, ops, orphans)
        v2 = root / layout.V2_PREFIX
        before = tree(root)
        # A model may delete a manifest an index still names: that store is broken before gc.
        errors_before = verify_errors(root)
        gc(root, "--dry-run", *m)
        assert tree(root) == before, "a dry run changes no byte"
        report = gc(root, "--quarantine", str(root / "q"), *m)
        for digest in model.reachable_blobs(delete_untagged):
            data = (v2 / layout.blob_data(digest)).read_bytes()
            assert hashlib_digest(data) == digest
        for repo, live in model.live(delete_untagged).items():
            for d in live - set(model.tags.get(repo, {}).values()):
                if d not in model.deleted.get(repo, set()):
                    assert (v2 / layout.revision_link(repo, d)).exists()
        removed = {i["digest"] for i in report["items"] if i["kind"] == "blob"}
        assert model.orphans <= removed
        assert gc(root, "--dry-run", *m)["items"] == [], "a second gc plans nothing"
        assert verify_errors(root) <= errors_before, "gc adds no error verify can see"
        restore = io.StringIO()
        assert main(["restore", str(root / "q"), "--root", str(root)], out=restore,
                    err=io.StringIO()) == 0
        assert tree(root) == before, "quarantine then restore is the identity"
