"""Grace period, holding area, quarantine and restore, stale uploads, empty repositories,
the safety valve and the signs of a live registry."""

from __future__ import annotations

import hashlib
import io
import json
import os
import time

import pytest

from regstore import layout
from regstore.cli import main
from regstore.holding import Holding, holding_root, recover
from regstore.inventory import take_inventory
from regstore.mark import late_references, mark
from regstore.store import FilesystemStore
from regstore.sweep import BLOB, apply_plan, build_plan
from tests.builders import StoreBuilder, age_store, build_store


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv) + ["--json"], out=out, err=err)
    return code, json.loads(out.getvalue()), err.getvalue()


def tree_hash(root, skip=(".regstore", "quarantine")):
    """Every directory, file name and content below ``root`` (but ``skip``), hashed."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        rel = os.path.relpath(dirpath, root)
        entries.append((f"D {rel}", b""))
        for n in filenames:
            entries.append((f"F {rel}/{n}", open(os.path.join(dirpath, n), "rb").read()))
    h = hashlib.sha256()
    for name, data in sorted(entries):
        h.update(name.encode() + b"\0" + data)
    return h.hexdigest()


def cfg(tmp_path, root, readonly=True):
    p = tmp_path / "config.yml"
    p.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n"
                 f"  maintenance:\n    readonly:\n      enabled: {str(readonly).lower()}\n")
    return str(p)


@pytest.fixture
def store(tmp_path):
    b, d = build_store(tmp_path / "root", {"app": {"v1": [b"a", b"shared"]},
                                           "lib": {"v1": [b"shared"]}})
    b.orphans = [b.layer("app", f"orphan {i}".encode()) for i in range(2)]
    b.old = b.image("app", [b"old"])
    age_store(b.root)
    return b


def kinds(report, key="items"):
    return sorted((i["kind"], i["digest"]) for i in report[key])


# --- grace period -----------------------------------------------------------------------

def test_young_orphan_is_protected_by_the_default_grace_and_listed(store, tmp_path):
    young = store.blob(b"just uploaded")
    code, report, _ = run("gc", "--dry-run", cfg(tmp_path, store.root))
    assert code == 0
    assert ("blob", young) in kinds(report, "protected")
    assert ("blob", young) not in kinds(report)
    assert {("blob", o) for o in store.orphans} <= set(kinds(report))
    code, report, _ = run("gc", "--dry-run", "--min-age", "0", cfg(tmp_path, store.root))
    assert ("blob", young) in kinds(report)


def test_young_layer_link_protects_an_old_blob(store, tmp_path):
    # The registry does not rewrite a blob it already has: a push reusing an old orphan
    # layer only writes a new link.
    link = store.path(layout.layer_link("lib", store.orphans[0]))
    store.link_layer("lib", store.orphans[0])
    assert link.stat().st_mtime > time.time() - 60
    code, report, _ = run("gc", "-q", cfg(tmp_path, store.root))
    assert code == 0
    assert store.path(layout.blob_data(store.orphans[0])).exists()
    assert link.exists() and store.path(layout.layer_link("app", store.orphans[0])).exists()
    assert not store.path(layout.blob_dir(store.orphans[1])).exists()


def test_young_untagged_manifest_and_its_layers_stay_with_m(store, tmp_path):
    child = store.image("app", [b"child of an index still being pushed"])
    code, report, _ = run("gc", "-m", cfg(tmp_path, store.root))
    assert code == 0
    assert ("manifest", child) in kinds(report, "protected")
    assert ("manifest", store.old) in kinds(report)
    assert store.path(layout.revision_link("app", child)).exists()
    inv = take_inventory(FilesystemStore(store.root))
    assert child in inv.blobs


def test_explicit_grace_allows_a_sweep_alongside_pushes(store, tmp_path):
    code, report, err = run("gc", cfg(tmp_path, store.root, readonly=False))
    assert code == 4
    code, report, err = run("gc", "--min-age", "10m", cfg(tmp_path, store.root, readonly=False))
    assert code == 0 and report["summary"]["removed"] > 0


# --- signs of a live registry -----------------------------------------------------------

def test_recent_upload_under_a_read_only_config_refuses_a_sweep(store, tmp_path):
    upload = store.path(layout.upload_dir("app", "0f1e2d3c-aaaa-bbbb-cccc-123456789abc"))
    upload.mkdir(parents=True)
    (upload / "startedat").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    (upload / "data").write_bytes(b"partial")
    before = tree_hash(store.root)
    code, report, err = run("gc", cfg(tmp_path, store.root))
    assert code == 4 and "0f1e2d3c" in report["error"] and "restart" in report["error"]
    assert tree_hash(store.root) == before
    code, report, err = run("gc", "--min-age", "1h", cfg(tmp_path, store.root))
    assert code == 0 and any("0f1e2d3c" in n for n in report["notes"])


# --- uploads and empty repositories -----------------------------------------------------

def test_stale_uploads_go_fresh_ones_stay(store, tmp_path):
    old_id, new_id = "11111111-old", "22222222-new"
    for upload_id in (old_id, new_id):
        d = store.path(layout.upload_dir("app", upload_id))
        d.mkdir(parents=True)
        (d / "data").write_bytes(b"x" * 10)
    age_store(store.path(layout.upload_dir("app", old_id)), 8 * 86400)
    age_store(store.path(layout.upload_dir("app", new_id)), 86400)  # not stale, not live
    old_started = store.path(layout.upload_dir("app", old_id)) / "startedat"
    old_started.write_text("2020-01-01T00:00:00Z")
    os.utime(old_started, (0, 0))
    code, report, _ = run("gc", "--dry-run", "--keep-uploads", cfg(tmp_path, store.root))
    assert not [i for i in report["items"] if i["kind"] == "upload"]
    code, report, _ = run("gc", cfg(tmp_path, store.root))
    assert [i["digest"] for i in report["items"] if i["kind"] == "upload"] == [old_id]
    assert not store.path(layout.upload_dir("app", old_id)).exists()
    assert store.path(layout.upload_dir("app", new_id)).exists()


def test_empty_repository_goes_but_a_nested_one_below_it_stays(tmp_path):
    b = StoreBuilder(tmp_path / "root")
    b.image("team/api", [b"live"], tag="v1")
    gone = b.image("team", [b"dead"])  # team: only an untagged manifest
    age_store(b.root)
    code, report, _ = run("gc", "-m", "--delete-empty-repos", cfg(tmp_path, b.root))
    assert code == 0
    assert [i["repository"] for i in report["items"] if i["kind"] == "repository"] == ["team"]
    assert not b.path("repositories/team/_manifests").exists()
    assert not b.path("repositories/team/_layers").exists()
    assert b.path(layout.tag_current_link("team/api", "v1")).exists()
    assert not b.path(layout.blob_dir(gone)).exists()


# --- safety valve -----------------------------------------------------------------------

def test_safety_valve_stops_an_abnormal_plan(tmp_path):
    b, _ = build_store(tmp_path / "root", {"app": {"v1": [b"x"]}})
    for i in range(20):
        b.blob(f"garbage {i}".encode())
    age_store(b.root)
    before = tree_hash(b.root)
    code, report, _ = run("gc", cfg(tmp_path, b.root))
    assert code == 7 and "20 of 23 blobs" in report["error"]
    assert tree_hash(b.root) == before
    code, report, _ = run("gc", "--dry-run", cfg(tmp_path, b.root))
    assert code == 0 and any("would stop" in n for n in report["notes"])
    code, report, _ = run("gc", "--max-delete-fraction", "0.9", cfg(tmp_path, b.root))
    assert code == 0 and report["summary"]["removed"] == 20


def test_removing_every_blob_of_a_tagged_store_always_stops(tmp_path):
    b, d = build_store(tmp_path / "root", {"app": {"v1": [b"x"]}})
    # Every manifest lost its tag's target: the mark finds nothing live.
    b.path(layout.tag_current_link("app", "v1")).write_text("sha256:" + "0" * 64)
    os.remove(b.path(layout.revision_link("app", d["app:v1"])))
    age_store(b.root)
    code, report, _ = run("gc", "-m", "--max-delete-fraction", "0.99", cfg(tmp_path, b.root))
    assert code == 7 and "every one of the" in report["error"]
    code, report, _ = run("gc", "-m", "--max-delete-fraction", "1", cfg(tmp_path, b.root))
    assert code == 0


# --- quarantine, restore, recovery ------------------------------------------------------

def test_quarantine_then_restore_is_the_identity(store, tmp_path):
    before = tree_hash(store.root)
    q = tmp_path / "root" / "quarantine"
    code, report, _ = run("gc", "-m", "--quarantine", str(q), cfg(tmp_path, store.root))
    assert code == 0 and report["summary"]["removed"] > 0
    assert tree_hash(store.root) != before
    code, restored, _ = run("restore", str(q), "--root", str(store.root))
    assert code == 0 and len(restored["restored"]) == report["summary"]["removed"]
    assert tree_hash(store.root) == before


def test_purge_quarantine_deletes_old_sweeps_only(store, tmp_path):
    q = tmp_path / "root" / "q"
    run("gc", "--quarantine", str(q), cfg(tmp_path, store.root))
    [sweep] = list(q.iterdir())
    code, report, _ = run("purge-quarantine", str(q), "--older-than", "1h")
    assert code == 0 and report["purged"] == [] and sweep.exists()
    os.utime(sweep / "journal.jsonl", (0, 0))
    code, report, _ = run("purge-quarantine", str(q), "--older-than", "1h")
    assert report["purged"] == [sweep.name] and not sweep.exists()


def test_an_interrupted_sweep_is_put_back_by_the_next_run(store, tmp_path):
    before = tree_hash(store.root)
    fs = FilesystemStore(store.root, writable=True)
    holding = Holding(fs)
    for o in store.orphans:  # as if killed after holding two blobs
        holding.remove(BLOB, layout.blob_dir(o), o, None, 0, "test")
    assert tree_hash(store.root) != before
    assert [h.digest for h in recover(fs)] == store.orphans
    assert tree_hash(store.root) == before
    assert not list(holding_root(store.root).iterdir())


def test_a_blob_a_push_starts_using_during_the_sweep_is_put_back(store, tmp_path):
    fs = FilesystemStore(store.root, writable=True)
    inv = take_inventory(fs)
    marks = mark(fs, inv, False)
    plan = build_plan(fs, inv, marks)
    started = time.time() - 1
    holding = Holding(fs)
    target = store.orphans[0]

    class PushDuringSweep:
        """Holds like the real thing, and once the target blob is held, a client pushes a
        manifest that uses it (its layer link exists already, so no upload happens)."""
        def remove(self, kind, key, digest, repository, size, reason):
            holding.remove(kind, key, digest, repository, size, reason)
            if kind == BLOB and digest == target:
                doc = {"schemaVersion": 2,
                       "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": store.descriptor(store.blob(b"{}")),
                       "layers": [{"mediaType": "x", "digest": target, "size": 8}]}
                os.makedirs(store.path(layout.blob_dir(target)), exist_ok=True)
                store.path(layout.blob_data(target)).write_bytes(b"orphan 0")
                store.manifest("newrepo", doc, tag="fresh")
                os.remove(store.path(layout.blob_data(target)))
                os.rmdir(store.path(layout.blob_dir(target)))

    result = apply_plan(fs, plan, remover=PushDuringSweep(),
                        rescan=late_references(fs, inv, started),
                        give_back=lambda d: [h.key for h in holding.give_back(d)])
    holding.finish(None)
    assert store.path(layout.blob_data(target)).read_bytes() == b"orphan 0"
    assert any(i.digest == target and "put back" in why for i, why in result.skipped)
    assert not store.path(layout.blob_dir(store.orphans[1])).exists()
