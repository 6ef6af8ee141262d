import os

import pytest

from regstore import layout
from regstore.inventory import TagTable, take_inventory
from regstore.mark import mark
from regstore.store import FilesystemStore, ReadOnlyStore
from regstore.sweep import BLOB, LAYER_LINK, MANIFEST, REPOSITORY, TAG_INDEX, PlanOptions, \
    apply_plan, build_plan
from tests.builders import StoreBuilder, build_store, sha256


def plan_for(root, delete_untagged=False, writable=False, compact=False, **options):
    store = FilesystemStore(root, writable=writable)
    inv = take_inventory(store, compact=compact)  # compact: as a gc takes it
    marks = mark(store, inv, delete_untagged)
    return store, build_plan(store, inv, marks, PlanOptions(**options))


def tree(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if not os.listdir(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, root)] = open(p, "rb").read() if os.path.isfile(p) else None
    return out


@pytest.mark.parametrize("compact", [False, True])
def test_plan_lists_orphans_with_sizes_and_links_to_missing_blobs(tmp_path, compact):
    b, d = build_store(tmp_path, {"app": {"v1": [b"a"]}})
    orphan = b.layer("app", b"12345")  # pushed, never used by a manifest
    ghost = "sha256:" + "9" * 64
    b.link_layer("app", ghost)  # link whose blob is already gone
    _, plan = plan_for(tmp_path, compact=compact)
    assert [(i.kind, i.digest, i.size) for i in plan.of_kind(BLOB)] == [(BLOB, orphan, 5)]
    assert sorted((i.digest, i.reason) for i in plan.of_kind(LAYER_LINK)) == sorted([
        (orphan, "link to a blob nothing live references"),
        (ghost, "link to a missing blob")])
    assert plan.blob_bytes == 5


def test_a_compact_inventory_marks_and_plans_what_a_whole_one_does(tmp_path):
    from tests.support import copy_fixture

    root = copy_fixture("mixed", tmp_path / "mixed")
    b = StoreBuilder(root)
    b.image("app", [b"live layer"], tag="v1")
    # Links whose keys (the first 16 hex digits of the hash) are shared: two to missing
    # blobs in one repository, one beside an unmarked blob of that key, one beside a live
    # layer's key.
    twin = "sha256:" + "1" * 16
    b.link_layer("app", twin + "a" * 48)
    b.link_layer("app", twin + "b" * 48)
    orphan = b.layer("other", b"never used")
    b.link_layer("app", orphan[:23] + "c" * 48)
    layer = sha256(b"live layer")
    b.link_layer("other", layer[:23] + "d" * 48)
    b.image("gone", [b"dead"])  # an untagged manifest alone: its repository empties with -m
    # Tags a compact inventory keeps whole: an unusable link, an invalid name; and one
    # pointing at nothing.
    old = b.image("app", [b"old"], tag="broken")
    b._write(layout.tag_current_link("app", "broken"), b"not a digest")
    b.tag("app", "fine", old)
    tags = b.path(layout.tags_dir("app"))
    os.rename(tags / "fine", tags / "bad@tag")
    b.tag("other", "dangling", "sha256:" + "e" * 64)
    for delete_untagged in (False, True):
        store = FilesystemStore(root)
        whole = take_inventory(store, tag_history=True)
        compact = take_inventory(store, tag_history=True, compact=True, processes=2)
        assert all(isinstance(r.tags, TagTable) for r in compact.repositories.values())
        assert {n: sorted(r.tags.items()) for n, r in compact.repositories.items()} == \
            {n: sorted(r.tags.items()) for n, r in whole.repositories.items()}
        one, other = (mark(store, inv, delete_untagged) for inv in (whole, compact))
        assert (other.marked, other.dead, other.problems) == (one.marked, one.dead, one.problems)
        assert {p.kind for p in one.problems} >= {"dangling-tag"}
        options = PlanOptions(empty_repositories=delete_untagged)
        exact, keyed = (build_plan(store, inv, marks, options)
                        for inv, marks in ((whole, one), (compact, other)))
        assert keyed.items == exact.items and keyed.protected == exact.protected
        links = {(i.repository, i.digest) for i in keyed.of_kind(LAYER_LINK)}
        assert {("app", twin + "a" * 48), ("app", twin + "b" * 48),
                ("app", orphan[:23] + "c" * 48), ("other", orphan)} <= links
        # a link sharing a live layer's key is kept, as the layer's blob is (regstore.digestsets)
        assert ("other", layer[:23] + "d" * 48) not in links
        assert [i.repository for i in keyed.of_kind(REPOSITORY)] == \
            (["gone"] if delete_untagged else [])
        if not delete_untagged:
            # As a gc without -m takes it: the blob listing made after the mark, sifted.
            for processes in (1, 2):
                inv, sifted, plan = gc_way(store, processes, options)
                assert inv.blob_count == len(whole.blobs) and len(inv.blobs) < len(whole.blobs)
                assert (sifted.marked, sifted.problems) == (one.marked, one.problems)
                assert plan.items == exact.items and plan.protected == exact.protected
                assert (plan.blobs_total, plan.marked) == \
                    (exact.blobs_total, exact.marked)
    assert old in one.marked  # the unusable tag's history is kept


def gc_way(store, processes, options=PlanOptions()):
    """Inventory, mark and plan as ``regstore gc`` without -m takes them."""
    from regstore.inventory import sift_blobs

    inv = take_inventory(store, tag_history=options.empty_repositories, blobs=False,
                         compact=True, processes=processes)
    marks = mark(store, inv, False, jobs=2, processes=processes, full=False, keep_live=False,
                 sift_blobs=lambda marked, read, more: sift_blobs(
                     store, inv, marked, read, more, processes=processes))
    return inv, marks, build_plan(store, inv, marks, options)


@pytest.mark.parametrize("processes", [1, 2])
def test_a_blob_listing_sifted_by_the_mark_plans_and_finds_what_a_whole_one_does(tmp_path,
                                                                                 processes):
    from tests.support import copy_fixture

    root = copy_fixture("mixed", tmp_path / "mixed")
    b = StoreBuilder(root)
    lost = b.image("app", [b"its manifest is lost"], tag="lost")
    b.image("app", [b"v2"], tag="v2")
    for n in range(30):
        b.layer("orphans", b"orphan %d" % n)
    # What the blob store holds besides blobs: a stray file, a blob under another prefix,
    # a symlink; and a live manifest whose blob is gone.
    blobs = b.path(layout.BLOBS) / "sha256"
    (blobs / "stray.txt").write_text("x")
    other = b.layer("elsewhere", b"misfiled")
    os.rename(blobs / other[7:9] / other[7:], blobs / ("00" if other[7:9] != "00" else "01") /
              other[7:])
    os.symlink("/nonexistent", blobs / "ab" / ("ab" + "0" * 62))
    import shutil
    shutil.rmtree(b.path(layout.blob_dir(lost)))
    store = FilesystemStore(root)
    whole = take_inventory(store)
    one = mark(store, whole, False)
    exact = build_plan(store, whole, one, PlanOptions())
    inv, sifted, plan = gc_way(store, processes)
    assert [f.key for f in inv.findings] == [f.key for f in whole.findings] and \
        {f.kind for f in inv.findings} >= {"stray-entry", "symlink"}
    assert (sifted.marked, sifted.problems) == (one.marked, one.problems)
    assert [(p.kind, p.digest) for p in sifted.problems] == [("missing-manifest", lost)]
    assert "not in the blob store" in sifted.problems[0].message
    assert plan.items == exact.items and len(plan.of_kind(BLOB)) >= 30
    assert inv.blob_count == len(whole.blobs) and set(inv.blobs) == set(
        i.digest for i in exact.of_kind(BLOB)) | {i.digest for i in exact.of_kind(LAYER_LINK)
                                                  if i.digest in whole.blobs}
    with pytest.raises(ValueError, match="another mark"):
        build_plan(store, inv, one, PlanOptions())


def test_untagged_manifest_goes_with_its_tag_history(tmp_path):
    b = StoreBuilder(tmp_path)
    v1 = b.image("app", [b"one"], tag="latest")
    v2 = b.image("app", [b"two"], tag="latest")  # overwrites the tag: v1 is untagged now
    store, plan = plan_for(tmp_path, delete_untagged=True, writable=True)
    assert [(i.kind, i.digest) for i in plan.of_kind(MANIFEST)] == [(MANIFEST, v1)]
    assert [(i.tag, i.digest) for i in plan.of_kind(TAG_INDEX)] == [("latest", v1)]
    result = apply_plan(store, plan)
    assert not result.failed and not result.skipped
    assert not b.path(layout.revision_dir("app", v1)).exists()
    assert not b.path(layout.tag_index_entry_dir("app", "latest", v1)).exists()
    assert not b.path(layout.blob_dir(v1)).exists()
    assert b.path(layout.blob_data(v2)).exists()
    assert b.path(layout.tag_index_entry_dir("app", "latest", v2)).exists()
    _, again = plan_for(tmp_path, delete_untagged=True)
    assert again.items == []


def test_dry_run_store_refuses_every_removal(tmp_path):
    b, _ = build_store(tmp_path, {"app": {"v1": [b"a"]}})
    b.blob(b"orphan")
    before = tree(tmp_path)
    store, plan = plan_for(tmp_path, writable=False)
    result = apply_plan(store, plan)
    assert result.removed == []
    with pytest.raises(ReadOnlyStore):
        store.remove_tree(plan.items[0].key)
    assert tree(tmp_path) == before


def test_sweep_removes_empty_parents_but_keeps_the_skeleton(tmp_path):
    b, _ = build_store(tmp_path, {"app": {"v1": [b"a"]}})
    orphan = b.layer("app", b"orphan")
    store, plan = plan_for(tmp_path, writable=True)
    apply_plan(store, plan)
    alg, hex_ = orphan.split(":")
    assert not b.path(f"blobs/sha256/{hex_[:2]}").exists() or \
        os.listdir(b.path(f"blobs/sha256/{hex_[:2]}"))
    assert b.path("blobs/sha256").is_dir()
    assert b.path(layout.layers_dir("app")).is_dir()


def test_retagged_manifest_is_not_unlinked(tmp_path):
    b = StoreBuilder(tmp_path)
    v1 = b.image("app", [b"one"], tag="latest")
    b.image("app", [b"two"], tag="latest")
    store, plan = plan_for(tmp_path, delete_untagged=True, writable=True)
    b.tag("app", "again", v1)  # somebody tags it between plan and sweep
    result = apply_plan(store, plan)
    assert [(i.kind, why) for i, why in result.skipped][:2] == [
        (TAG_INDEX, "a tag points at it now"), (MANIFEST, "a tag points at it now")]
    assert b.path(layout.revision_link("app", v1)).exists()
    assert b.path(layout.tag_index_entry_dir("app", "latest", v1)).exists(), \
        "its history entries stay with it"
    assert b.path(layout.blob_data(v1)).exists(), "blobs wait when a manifest stayed"


def test_changed_blob_is_not_removed(tmp_path):
    b, _ = build_store(tmp_path, {"app": {"v1": [b"a"]}})
    orphan = b.blob(b"orphan")
    store, plan = plan_for(tmp_path, writable=True)
    data = b.path(layout.blob_data(orphan))
    os.utime(data, (1, 1))
    result = apply_plan(store, plan)
    assert [why for _, why in result.skipped] == ["its data changed since the plan was made"]
    assert data.exists()


def test_symlinked_blob_is_never_removed_or_followed(tmp_path):
    b, _ = build_store(tmp_path, {"app": {"v1": [b"a"]}})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data").write_bytes(b"precious")
    hex_ = "7" * 64
    (b.path("blobs/sha256/77")).mkdir(parents=True)
    os.symlink(outside, b.path(f"blobs/sha256/77/{hex_}"))
    store, plan = plan_for(tmp_path, writable=True)
    assert all(i.digest != f"sha256:{hex_}" for i in plan.items)
    apply_plan(store, plan)
    assert (outside / "data").read_bytes() == b"precious"


def test_remove_refuses_paths_outside_the_root(tmp_path):
    build_store(tmp_path, {"app": {"v1": [b"a"]}})
    store = FilesystemStore(tmp_path, writable=True)
    from regstore.store import StoreError
    for key in ("../x", "blobs/../../x", "/etc", "blobs//x"):
        with pytest.raises(StoreError):
            store.remove_tree(key)


def test_a_blob_sharing_its_key_with_a_live_one_is_kept_and_the_live_one_too(tmp_path):
    # The mark keeps 8-byte keys (regstore.digestsets): a blob whose hash begins like a live
    # blob's is kept as if live; it can never make the live one go.
    build_store(tmp_path, {"app": {"v1": [b"layer"]}})
    b = StoreBuilder(tmp_path)
    live = sha256(b"layer")
    twin = live[:7 + 16] + ("0" if live[-1] != "0" else "1") * 48
    b.blob(b"crafted")  # written under its own digest, then moved under the twin's
    os.rename(b.path(layout.blob_dir(sha256(b"crafted"))), b.path(layout.blob_dir(twin)))
    b.link_layer("app", twin)
    orphan = b.blob(b"nobody needs me")
    _, plan = plan_for(tmp_path)
    assert {(i.kind, i.digest) for i in plan.items} == {(BLOB, orphan)}
    assert not plan.protected and b.path(layout.blob_data(live)).exists()
