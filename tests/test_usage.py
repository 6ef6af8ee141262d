"""regstore du and explain: numbers that reconcile, and answers that agree with the mark."""

from __future__ import annotations

import hashlib

from regstore.inventory import take_inventory
from regstore.manifest import OCI_MANIFEST
from regstore.mark import mark
from regstore.store import FilesystemStore
from regstore.usage import explain, usage
from tests.builders import StoreBuilder
from tests.support import copy_fixture


def marks_for(root):
    store = FilesystemStore(root)
    inv = take_inventory(store)
    return store, inv, mark(store, inv, False), mark(store, inv, True)


def test_unique_plus_shared_equals_reachable_on_the_real_registry_store(tmp_path):
    root = copy_fixture("mixed", tmp_path / "store")
    store, inv, plain, untagged = marks_for(root)
    u = usage(store, inv, plain, untagged)
    # Computed independently: every blob file's size, and which repositories' revisions and
    # tags reach it according to the plain mark's per-repository live sets.
    blob_dir = root / "docker/registry/v2/blobs/sha256"
    sizes = {f"sha256:{p.name}": (p / "data").stat().st_size
             for prefix in blob_dir.iterdir() for p in prefix.iterdir()}
    assert u.total_bytes == sum(sizes.values())
    assert sum(r.unique_bytes for r in u.repositories) + u.shared_bytes == u.reachable_bytes
    assert u.reachable_bytes + u.orphan_bytes == u.total_bytes
    orphans = plain.marked.missing(inv.blobs)
    assert u.orphan_bytes == sum(sizes[d] for d in orphans)
    for r in u.repositories:
        assert r.reachable_bytes == r.unique_bytes + r.shared_bytes
        assert 0 <= r.freed_by_m_bytes <= r.reachable_bytes
    by_name = {r.repository: r for r in u.repositories}
    assert by_name["app"].freed_by_m_bytes > 0  # the overwritten v1 and the deleted rc1's refs
    assert by_name["multi/nested"].freed_by_m_bytes == 0  # children of a tagged index stay


def test_shared_layer_counts_once_and_is_not_unique(tmp_path):
    b = StoreBuilder(tmp_path)
    shared = b"s" * 1000
    b.image("a", [shared, b"a" * 10], tag="v1", config=b"ca")
    b.image("b", [shared, b"b" * 20], tag="v1", config=b"cb")
    store, inv, plain, untagged = marks_for(tmp_path)
    u = usage(store, inv, plain, untagged)
    assert u.shared_bytes == 1000
    a, bb = u.repositories
    assert a.shared_bytes == bb.shared_bytes == 1000
    assert a.unique_bytes == 10 + 2 + a.reachable_bytes - 1000 - 12  # layers, config, manifest
    assert bb.unique_bytes == bb.reachable_bytes - 1000


def test_explain_names_every_chain_and_agrees_with_the_mark(tmp_path):
    b = StoreBuilder(tmp_path)
    layer = b"the layer"
    child = b.image("multi", [layer])
    b.index("multi", [child], tag="latest")
    sig = b.image("multi", [b"signature"], media_type=OCI_MANIFEST, subject=child)
    b.image("other", [layer], tag="v1")
    orphan = b.blob(b"orphan")
    store, inv, plain, untagged = marks_for(tmp_path)
    digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    chains = [str(c) for c in explain(digest, inv, untagged)]
    assert any(c.startswith("multi:latest -> ") and f"-> {child} -> {digest} (layer)" in c
               for c in chains)
    assert any(c.startswith("other:v1 -> ") for c in chains)
    sig_chains = explain(sig, inv, untagged)
    assert [c.role for c in sig_chains] == ["manifest"]
    assert sig_chains[0].path[-2:] == (child, sig)
    assert explain(orphan, inv, untagged) == [] and explain(orphan, inv, plain) == []
    for d in inv.blobs:
        assert bool(explain(d, inv, untagged)) == (d in untagged.marked)
        assert bool(explain(d, inv, plain)) == (d in plain.marked)
