import os

import pytest

from regstore import layout
from regstore.digestsets import Digests
from regstore.inventory import take_inventory
from regstore.manifest import DOCKER_LIST, OCI_MANIFEST, Manifest
from regstore.mark import FOLDED, NOT_LISTED, mark
from regstore.store import FilesystemStore
from tests.builders import StoreBuilder, build_store, sha256


def run_mark(root, delete_untagged=False):
    store = FilesystemStore(root)
    inv = take_inventory(store)
    return inv, mark(store, inv, delete_untagged)


def test_shared_layers_across_repositories_stay_while_one_user_lives(tmp_path):
    b, d = build_store(tmp_path, {"app": {"v1": [b"base", b"app"]}, "team/db": {"v1": [b"base"]}})
    orphan = b.blob(b"nobody needs me")
    inv, marks = run_mark(tmp_path)
    assert marks.marked.missing(inv.blobs) == [orphan]
    assert set(inv.repositories) == {"app", "team/db"}
    assert marks.complete


def test_untagged_revision_is_live_without_m_and_dead_with_it(tmp_path):
    b, d = build_store(tmp_path, {"app": {"v1": [b"a"]}})
    old = b.image("app", [b"old layer"])  # pushed by digest, never tagged
    _, plain = run_mark(tmp_path)
    assert old in plain.marked and not plain.dead.get("app")
    _, m = run_mark(tmp_path, delete_untagged=True)
    assert m.dead["app"] == {old}
    assert old not in m.marked and d["app:v1"] in m.marked


def test_children_of_a_tagged_index_stay_with_m(tmp_path):
    # distribution#3004: the registry 2.8 GC unlinks these children and sweeps their layers.
    b = StoreBuilder(tmp_path)
    amd = b.image("multi", [b"amd64 layer"])
    arm = b.image("multi", [b"arm64 layer"])
    inner = b.index("multi", [arm])
    top = b.index("multi", [amd, inner], tag="latest")
    inv, m = run_mark(tmp_path, delete_untagged=True)
    assert m.live["multi"] == {top, inner, amd, arm}
    assert not m.dead["multi"]
    assert not m.marked.missing(inv.blobs)


def test_docker_manifest_list_children_stay(tmp_path):
    b = StoreBuilder(tmp_path)
    child = b.image("app", [b"layer"])
    b.index("app", [child], tag="v1", media_type=DOCKER_LIST)
    inv, m = run_mark(tmp_path, delete_untagged=True)
    assert child in m.live["app"] and not m.marked.missing(inv.blobs)


def test_referrers_of_live_manifests_stay_and_of_dead_ones_go(tmp_path):
    b = StoreBuilder(tmp_path)
    image = b.image("app", [b"layer"], tag="v1", media_type=OCI_MANIFEST)
    sig = b.image("app", [b"signature"], media_type=OCI_MANIFEST, subject=image)
    sig_of_sig = b.image("app", [b"countersig"], media_type=OCI_MANIFEST, subject=sig)
    dead = b.image("app", [b"old"], media_type=OCI_MANIFEST)
    sbom_of_dead = b.image("app", [b"old sbom"], media_type=OCI_MANIFEST, subject=dead)
    _, m = run_mark(tmp_path, delete_untagged=True)
    assert {image, sig, sig_of_sig} == m.live["app"]
    assert m.dead["app"] == {dead, sbom_of_dead}


def test_referrer_does_not_keep_its_subject(tmp_path):
    b = StoreBuilder(tmp_path)
    subject = b.image("app", [b"layer"], media_type=OCI_MANIFEST)
    b.image("app", [b"sig"], tag="sig", media_type=OCI_MANIFEST, subject=subject)
    _, m = run_mark(tmp_path, delete_untagged=True)
    assert subject in m.dead["app"]


def test_missing_live_manifest_makes_the_mark_incomplete(tmp_path):
    b, d = build_store(tmp_path, {"app": {"v1": [b"a"]}, "other": {"v1": [b"b"]}})
    os.remove(b.path(layout.blob_data(d["app:v1"])))
    _, m = run_mark(tmp_path)
    assert not m.complete
    [problem] = [p for p in m.problems if p.severity == "error"]
    assert problem.kind == "missing-manifest" and problem.digest == d["app:v1"]
    assert problem.images == ("app:v1",)


def test_invalid_live_manifest_makes_the_mark_incomplete(tmp_path):
    b, d = build_store(tmp_path, {"app": {"v1": [b"a"]}})
    b.path(layout.blob_data(d["app:v1"])).write_bytes(b"{not json")
    _, m = run_mark(tmp_path, delete_untagged=True)
    assert [p.kind for p in m.problems] == ["invalid-manifest"] and not m.complete


def test_index_cycle_terminates(tmp_path):
    b = StoreBuilder(tmp_path)
    # An index cannot name its own digest, but a store can be edited to hold a cycle:
    # two revisions whose "children" name each other through their blob contents.
    a = b.index("app", [b.image("app", [b"x"])], tag="a")
    import json
    doc = json.loads(b.path(layout.blob_data(a)).read_bytes())
    doc["manifests"].append({"mediaType": "x", "digest": a, "size": 1})
    b.path(layout.blob_data(a)).write_bytes(json.dumps(doc).encode())  # now refers to itself
    _, m = run_mark(tmp_path, delete_untagged=True)
    assert a in m.live["app"]


def test_repository_without_tags_dir_is_fine_with_m(tmp_path):
    b = StoreBuilder(tmp_path)
    r = b.image("lonely", [b"x"])
    b.image("app", [b"y"], tag="v1")
    inv, m = run_mark(tmp_path, delete_untagged=True)
    assert not inv.repositories["lonely"].has_tags_dir
    assert m.dead["lonely"] == {r} and m.complete


@pytest.mark.parametrize("history", [False, True])
def test_an_invalid_tag_name_is_reported_at_its_directory(tmp_path, history):
    b = StoreBuilder(tmp_path)
    v1 = b.image("team/app", [b"x"], tag="v1")
    bad = b.path(layout.tags_dir("team/app")) / "-bad" / "current"
    bad.mkdir(parents=True)
    (bad / "link").write_text(v1)
    inv = take_inventory(FilesystemStore(tmp_path), tag_history=history)
    found = [(f.kind, f.key) for f in inv.findings if f.kind == "invalid-tag-name"]
    assert found == [("invalid-tag-name", "repositories/team/app/_manifests/tags/-bad")]
    assert inv.repositories["team/app"].tags["-bad"].current == v1


def test_bad_current_link_keeps_the_whole_tag_history(tmp_path):
    b = StoreBuilder(tmp_path)
    v1 = b.image("app", [b"one"], tag="v1")
    v2 = b.image("app", [b"two"], tag="v1")
    b.path(layout.tag_current_link("app", "v1")).write_bytes(b"")
    _, m = run_mark(tmp_path, delete_untagged=True)
    assert {v1, v2} <= m.live["app"] and not m.dead["app"]
    assert m.complete


def test_dangling_tag_is_a_warning_not_a_block(tmp_path):
    b, d = build_store(tmp_path, {"app": {"v1": [b"a"]}})
    ghost = "sha256:" + "e" * 64
    b.tag("app", "ghost", ghost)
    _, m = run_mark(tmp_path, delete_untagged=True)
    assert m.complete
    assert [(p.kind, p.severity) for p in m.problems] == [("dangling-tag", "warning")]


def test_each_manifest_is_read_once_across_repositories(tmp_path, monkeypatch):
    b = StoreBuilder(tmp_path)
    shared = b.image("a", [b"x"], tag="v1")
    for repo in ("b", "c", "d"):
        b.image(repo, [b"x"], tag="v1")  # same bytes, same digest
    store = FilesystemStore(tmp_path)
    reads = []
    real_read = store.read
    monkeypatch.setattr(store, "read", lambda k, n: reads.append(k) or real_read(k, n))
    mark(store, take_inventory(store), True)
    assert reads.count(layout.blob_data(shared)) == 1


@pytest.mark.parametrize("away", [False, True], ids=["here-too", "away-only"])
def test_the_inventory_is_the_same_whatever_the_number_of_processes(tmp_path, monkeypatch,
                                                                    away):
    from tests.support import copy_fixture

    import regstore.inventory

    if away:  # as for a store of many repositories: only forked processes scan them
        monkeypatch.setattr(regstore.inventory, "SCANNED_AWAY_FROM", 1)
    root = copy_fixture("mixed", tmp_path / "mixed")
    (root / "docker/registry/v2/repositories/stray-file").write_bytes(b"x")
    os.symlink(tmp_path, root / "docker/registry/v2/repositories/app/_manifests/tags/evil")
    store = FilesystemStore(root)
    one = take_inventory(store, jobs=1, processes=1)
    for processes in (2, 3):
        many = take_inventory(store, jobs=4, processes=processes)
        assert many.repositories == one.repositories
        assert many.blobs == one.blobs
        assert many.findings == one.findings and many.blocking == one.blocking
        assert any(f.kind == "symlink" for f in many.blocking)


def kept(m):
    """What a gc keeps of a manifest (regstore.mark.Parsed): its references, or only its blobs'
    keys where it references nothing else."""
    refs = m.references()
    return refs.blob_keys if not refs.children and refs.subject is None else refs


def test_the_mark_is_the_same_whatever_the_processes_and_what_it_keeps_of_manifests(tmp_path):
    from tests.support import copy_fixture

    root = copy_fixture("mixed", tmp_path / "mixed")
    store = FilesystemStore(root)
    inv = take_inventory(store)
    revisions = {d for r in inv.repositories.values() for d in r.revisions}

    def references(digest, m, folds):
        """What a mark without ``full`` keeps of a manifest the full mark parsed: its
        references, or its blobs' keys alone, and without -m for a revision's image manifest
        FOLDED (its keys went to the mark as read)."""
        if not isinstance(m, Manifest):
            return m
        if type(kept(m)) is bytes and folds and digest in revisions:
            return FOLDED
        return kept(m)

    for delete_untagged in (False, True):
        one = mark(store, inv, delete_untagged, jobs=1, processes=1)
        for processes, full in ((2, True), (3, True), (1, False), (2, False)):
            many = mark(store, inv, delete_untagged, jobs=4, processes=processes, full=full)
            if full:
                assert many.manifests == one.manifests and len(many.manifests) > 20
            else:  # only the references of each manifest are kept
                assert many.manifests == {d: references(d, m, not delete_untagged)
                                          for d, m in one.manifests.items()}
                folded = sum(m is FOLDED for m in many.manifests.values())
                assert (folded > 10) if not delete_untagged else \
                    any(type(m) is bytes for m in many.manifests.values())
            assert (many.marked, many.live, many.dead, many.problems) == \
                (one.marked, one.live, one.dead, one.problems)
        bare = mark(store, inv, delete_untagged, jobs=4, processes=2, full=False,
                    keep_live=False)
        assert (bare.marked, bare.dead, bare.problems) == (one.marked, one.dead, one.problems)
        assert not bare.live and len(one.live) > 3


def test_a_blob_listing_made_during_the_mark_gives_the_same_mark(tmp_path):
    from tests.support import copy_fixture

    from regstore.inventory import list_blobs
    from regstore.sweep import PlanOptions, build_plan

    store = FilesystemStore(copy_fixture("mixed", tmp_path / "mixed"))
    whole = take_inventory(store)
    for delete_untagged in (False, True):
        before = mark(store, whole, delete_untagged, jobs=1, processes=1, full=False)
        for processes in (1, 2, 3):
            inv = take_inventory(store, blobs=False)
            assert not inv.blobs and not inv.blobs_listed
            with pytest.raises(ValueError, match="blob listing"):
                mark(store, inv, delete_untagged)
            with pytest.raises(ValueError, match="blob listing"):
                build_plan(store, inv, before, PlanOptions())
            during = mark(store, inv, delete_untagged, jobs=2, processes=processes, full=False,
                          list_blobs=lambda: list_blobs(store, inv))
            assert inv.blobs == whole.blobs and inv.blobs_listed
            assert (during.marked, during.live, during.dead, during.problems,
                    during.manifests) == (before.marked, before.live, before.dead,
                                          before.problems, before.manifests)


@pytest.mark.parametrize("processes", [1, 2])
def test_a_manifest_the_late_blob_listing_lacks_is_missing_though_it_was_read(tmp_path,
                                                                              processes):
    from regstore.inventory import list_blobs

    b = StoreBuilder(tmp_path)
    images = {b.image("app", [b"layer %d" % n], tag=f"t{n}"): b"layer %d" % n for n in range(9)}
    # The first manifest read: without -m, its parse result carries the blob keys of every
    # image manifest of its slice (regstore.mark.ManifestCache(fold=True)).
    gone = min(images)
    store = FilesystemStore(tmp_path)
    inv = take_inventory(store, blobs=False)

    def listing_without_it():
        list_blobs(store, inv)
        # as if the blob had gone between the reads and the listing
        inv.blobs = Digests(d for d in inv.blobs if d != gone)

    marks = mark(store, inv, False, processes=processes, full=False,
                 list_blobs=listing_without_it)
    assert [(p.kind, p.digest) for p in marks.problems] == [("missing-manifest", gone)]
    assert "not in the blob store" in marks.problems[0].message
    # What the other manifests reference stays marked.
    assert all(sha256(layer) in marks.marked for d, layer in images.items() if d != gone)


@pytest.mark.parametrize("processes", [1, 2])
def test_a_manifest_gone_before_the_sifted_listing_is_missing_and_what_it_marked_stays(
        tmp_path, processes):
    import shutil

    from regstore.inventory import sift_blobs

    b = StoreBuilder(tmp_path)
    images = {b.image("app", [b"layer %d" % n], tag=f"t{n}"): b"layer %d" % n for n in range(9)}
    child = list(images)[0]  # an index's child
    index = b.index("app", [child, list(images)[1]], tag="multi")
    # An image alone, the only blob of its prefix directory: the directory goes with it.
    gone = next(d for d in list(images)[2:]
                if len(os.listdir(b.path(layout.blob_dir(d)).parent)) == 1)
    store = FilesystemStore(tmp_path)
    inv = take_inventory(store, blobs=False, compact=True)
    seen = {}

    def sift_after_losing_them(marked, read, more):
        # as if the blobs had gone between the reads and the listing
        shutil.rmtree(b.path(layout.blob_dir(child)))
        shutil.rmtree(b.path(layout.blob_dir(gone)).parent)
        seen["read"] = set(read) | set(more)
        return sift_blobs(store, inv, marked, read, more, processes=processes)

    marks = mark(store, inv, False, processes=processes, full=False, keep_live=False,
                 sift_blobs=sift_after_losing_them)
    assert seen["read"] == set(images) | {index}
    assert sorted((p.kind, p.digest) for p in marks.problems) == \
        sorted([("missing-manifest", gone), ("missing-manifest", child)])
    assert all("not in the blob store" in p.message for p in marks.problems)
    assert marks.manifests[gone] == marks.manifests[child] == NOT_LISTED
    # What they referenced when they were read stays marked: more kept, never less.
    assert all(sha256(layer) in marks.marked for layer in images.values())
    assert inv.blobs_listed and gone not in inv.blobs and inv.blob_count == len(
        take_inventory(store).blobs)
    with pytest.raises(ValueError, match="without -m"):
        mark(store, take_inventory(store, blobs=False), True, sift_blobs=sift_blobs)


def test_keys_folded_in_many_slices_of_many_processes_are_all_marked(tmp_path):
    # Enough manifests that each process's parts are read in several slices, whose keys it
    # joins into one chunk (regstore.mark._one_folded).
    b = StoreBuilder(tmp_path)
    layers = [b"shared"] + [b"layer %d" % n for n in range(400)]
    for n in range(400):
        b.image(f"repo{n % 7}", [layers[0], layers[n + 1]], tag=f"t{n}")
    store = FilesystemStore(tmp_path)
    one = mark(store, take_inventory(store), False, jobs=1, processes=1)
    for processes in (2, 3):
        many = mark(store, take_inventory(store, compact=True), False, jobs=1,
                    processes=processes, full=False, keep_live=False)
        assert many.marked == one.marked and all(sha256(x) in many.marked for x in layers)


def test_the_late_check_of_a_compact_inventory_keeps_what_a_whole_one_keeps(tmp_path):
    import time

    from regstore.mark import late_references

    b = StoreBuilder(tmp_path)
    b.image("app", [b"live"], tag="v1")
    old, anew, pushed, touched, keyed = (b.layer("app", b"orphan %d" % n) for n in range(5))
    twin = old[:23] + ("0" if old[23] != "0" else "1") * 48  # old's key, never linked
    store = FilesystemStore(tmp_path)
    whole, compact = take_inventory(store), take_inventory(store, compact=True, blobs=False)
    since = time.time()
    time.sleep(0.01)
    b.link_layer("other", anew)  # linked anew, in a repository new since
    b.image("app", [b"orphan 2"], tag="v2")  # referenced by a manifest pushed since
    os.utime(b.path(layout.layer_link("app", touched)))  # its link written again
    keyed_twin = keyed[:23] + ("0" if keyed[23] != "0" else "1") * 48
    b.link_layer("app", keyed_twin)  # a new link sharing the key of one before
    asked = {old, anew, pushed, touched, keyed, twin, keyed_twin}
    kept = [late_references(store, inv, since, jobs=2)(set(asked))
            for inv in (whole, compact)]
    assert kept[0] == kept[1] == {anew, pushed, touched, keyed_twin}


@pytest.mark.parametrize("where", ["tree", "first repository", "last repository"])
def test_the_late_check_keeps_everything_asked_when_the_store_cannot_be_read_whole(tmp_path,
                                                                                where):
    import time

    from regstore.mark import late_references

    b = StoreBuilder(tmp_path)
    for name in ("aaa", "mmm", "zzz"):
        b.image(name, [b"live " + name.encode()], tag="v1")
    orphans = {b.layer("mmm", b"orphan %d" % n) for n in range(3)}
    store = FilesystemStore(tmp_path)
    since = time.time()
    inventories = [take_inventory(store, compact=compact, blobs=False)
                   for compact in (False, True)]
    for inv in inventories:
        assert late_references(store, inv, since)(set(orphans)) == set()
    # Found now, an error (a symlink the registry would follow) wherever the walk meets it:
    # what the rest of the store needs cannot be known, so every digest asked about stays.
    outside = tmp_path / "outside"
    outside.mkdir()
    link = {"tree": b.path("repositories") / "evil",
            "first repository": b.path(layout.tags_dir("aaa")) / "evil",
            "last repository": b.path(layout.tags_dir("zzz")) / "evil"}[where]
    os.symlink(outside, link)
    for inv in inventories:
        assert late_references(store, inv, since)(set(orphans)) == orphans


def test_without_tag_history_a_plain_gc_plans_the_same_and_nothing_needing_it_runs(tmp_path):
    from tests.support import copy_fixture

    from regstore.sweep import PlanOptions, build_plan

    store = FilesystemStore(copy_fixture("mixed", tmp_path / "mixed"))
    full = take_inventory(store)
    light = take_inventory(store, tag_history=False)
    assert any(t.index for r in full.repositories.values() for t in r.tags.values())
    assert not any(t.index for r in light.repositories.values() for t in r.tags.values())
    assert {n: {t: (v.current, v.bad_link) for t, v in r.tags.items()}
            for n, r in light.repositories.items()} == \
        {n: {t: (v.current, v.bad_link) for t, v in r.tags.items()}
         for n, r in full.repositories.items()}
    plans = [build_plan(store, inv, mark(store, inv, False)) for inv in (full, light)]
    assert plans[0].items == plans[1].items and plans[0].items
    with pytest.raises(ValueError, match="history"):
        mark(store, light, True)
    with pytest.raises(ValueError, match="history"):
        build_plan(store, light, mark(store, light, False), PlanOptions(empty_repositories=True))


def test_listing_marking_and_planning_in_threads_give_what_inline_work_gives(tmp_path,
                                                                              monkeypatch):
    """On a cold disk the pools go to threads (repositories, tag links, -m's grace check, the
    plan's stats); forced to from the first item, the outcome is the same as inline."""
    import time

    from regstore import pool as pool_mod
    from regstore.sweep import PlanOptions, build_plan
    from tests.support import copy_fixture

    root = copy_fixture("mixed", tmp_path / "mixed")
    # The copy keeps the fixture's times, which a checkout made a minute ago has: aged, so
    # that the grace period below protects nothing but what is written meanwhile.
    for path in [root, *root.rglob("*")]:
        os.utime(path, (time.time() - 3600, time.time() - 3600), follow_symlinks=False)
    store = FilesystemStore(root)
    options = PlanOptions(protect_since=time.time() - 60, uploads_before=time.time(),
                          empty_repositories=True, jobs=4)

    def run(processes):
        inv = take_inventory(store, jobs=4, processes=processes)
        marks = mark(store, inv, True, jobs=4, protect_since=time.time() - 60,
                     processes=processes)
        return inv, marks, build_plan(store, inv, marks, options)

    inline = run(1)
    monkeypatch.setattr(pool_mod, "WINDOW", 0.0)
    monkeypatch.setattr(pool_mod, "WAITING", -1.0)  # every window counts as waiting
    for processes in (1, 2):
        inv, marks, plan = run(processes)
        assert inv.repositories == inline[0].repositories and inv.blobs == inline[0].blobs
        assert (marks.marked, marks.dead, marks.problems) == \
            (inline[1].marked, inline[1].dead, inline[1].problems)
        assert plan.items == inline[2].items and plan.protected == inline[2].protected
    assert inline[2].items and any(i.kind == "manifest" for i in inline[2].items)


def test_holds_only_file_is_certain_or_says_list_it(tmp_path):
    store = FilesystemStore(tmp_path)
    v2 = tmp_path / "docker/registry/v2"
    (v2 / "plain").mkdir(parents=True)
    (v2 / "plain/link").write_bytes(b"x")
    (v2 / "with-subdir/signatures").mkdir(parents=True)
    (v2 / "with-subdir/link").write_bytes(b"x")
    (v2 / "link-is-dir/link").mkdir(parents=True)
    (v2 / "link-is-symlink").mkdir()
    os.symlink(v2 / "plain/link", v2 / "link-is-symlink/link")
    os.symlink(v2 / "plain", v2 / "dir-is-symlink")
    (v2 / "no-link").mkdir()
    assert store.holds_only_file("plain", "link")
    for key in ("with-subdir", "link-is-dir", "link-is-symlink", "dir-is-symlink", "no-link",
                "absent"):
        assert not store.holds_only_file(key, "link"), key


def test_signatures_of_a_revision_are_found_past_the_quick_check(tmp_path):
    # Registry 2.0-2.4 linked signature blobs under the revision: its directory then has a
    # subdirectory, which the two-stat check sees, and the revision is listed in full.
    b = StoreBuilder(tmp_path)
    digest = b.image("app", [b"layer"], tag="v1")
    plain = b.image("app", [b"other"])
    signature = b.blob(b"a signature")
    hex_ = signature.split(":")[1]
    b._write(f"{layout.revisions_dir('app')}/sha256/{digest.split(':')[1]}/signatures/sha256/"
             f"{hex_}/link", signature.encode())
    for processes in (1, 2):
        store = FilesystemStore(tmp_path)
        inv = take_inventory(store, processes=processes, tag_history=False)
        assert inv.repositories["app"].revisions == {digest, plain}
        assert inv.repositories["app"].signatures == {digest: {signature}}
        assert signature in mark(store, inv, False).marked


def test_a_plain_gc_reads_tags_without_listing_them_and_finds_the_same(tmp_path):
    b = StoreBuilder(tmp_path)
    v1 = b.image("app", [b"one"], tag="v1")
    b.image("app", [b"two"], tag="v2")
    # An odd entry beside current is only looked at where the tag is listed (-m, verify);
    # a current that is not a plain directory holding its link makes the tag listed anyway.
    b._write(f"{layout.tag_dir('app', 'v1')}/notes.txt", b"x")
    (b.path(layout.tag_dir("app", "v3")) / "current").mkdir(parents=True)
    store = FilesystemStore(tmp_path)
    quick = take_inventory(store, tag_history=False)
    full = take_inventory(store, tag_history=True)
    assert {n: t.current for n, t in quick.repositories["app"].tags.items()} == \
        {n: t.current for n, t in full.repositories["app"].tags.items()} == \
        {"v1": v1, "v2": full.repositories["app"].tags["v2"].current, "v3": None}
    assert [f.key for f in full.findings if f.kind == "stray-entry"] == \
        [f"{layout.tag_dir('app', 'v1')}/notes.txt"]
    assert not [f for f in quick.findings if f.kind == "stray-entry"]


def test_list_dir_gives_each_entry_its_kind_with_or_without_counting_links(tmp_path):
    v2 = tmp_path / "docker/registry/v2"
    for name in ("only-dirs/a", "only-dirs/b", "mixed/a", "empty"):
        (v2 / name).mkdir(parents=True)
    (v2 / "mixed/file").write_bytes(b"x")
    os.symlink(v2 / "only-dirs/a", v2 / "mixed/to-dir")
    want = {"only-dirs": {("a", "dir"), ("b", "dir")}, "empty": set(),
            "mixed": {("a", "dir"), ("file", "file"), ("to-dir", "symlink")}}
    counting, reading = FilesystemStore(tmp_path), FilesystemStore(tmp_path)
    reading._counts_subdirectories = False  # as on btrfs, whose directories count 1 link
    assert counting._counts_subdirectories
    for store in (counting, reading):
        assert {key: set(store.list_dir(key)) for key in want} == want
    # subdirectories: the names, only when certain that each is a directory
    assert sorted(counting.subdirectories("only-dirs")) == ["a", "b"]
    assert counting.subdirectories("absent") == []
    # no subdirectory: only a listing can tell files from nothing, and list_dir makes one
    assert counting.subdirectories("empty") is None
    assert counting.subdirectories("mixed") is None
    assert counting.subdirectories("mixed/file") is None  # list_dir says what is wrong
    assert all(reading.subdirectories(key) is None for key in want)
