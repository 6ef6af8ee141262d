"""verify on small built stores (one test per finding kind, images named, rotation, the CLI)
and on copies of the real-registry fixtures (corruption, rotation, the state file). Tests that
start the registry itself are in test_verify_realregistry.py."""

import functools
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from regstore import layout
from regstore.cli import main
from regstore.findings import ERROR, HINT, WARNING
from regstore.lock import StoreLock
from regstore.manifest import DOCKER_LIST, OCI_MANIFEST, SCHEMA2
from regstore.state import VerifyState, default_state_path, load_state
from regstore.store import FilesystemStore, StoreError
from regstore.verify import KINDS, verify
from tests.builders import StoreBuilder, sha256
from tests.support import copy_fixture, fixture_names, fixture_record


def check(root, **kwargs):
    return verify(FilesystemStore(root), **kwargs)


def problems(report):
    """Errors and warnings as (kind, severity, digest, images)."""
    return sorted((f.kind, f.severity, f.digest, f.images) for f in report.findings
                  if f.severity != HINT)


def hints(report):
    return sorted((f.kind, f.digest) for f in report.findings if f.severity == HINT)


def flip(path, offset=0):
    """Flip every bit of one byte (borg's way: writing a fixed value is a no-op 1 in 256)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def app(tmp_path):
    """A store with app:v1 = [config, layer a, layer b]; returns builder, manifest, layers."""
    b = StoreBuilder(tmp_path)
    la, lb = b"layer a" * 100, b"layer b" * 100
    v1 = b.image("app", [la, lb], tag="v1")
    return b, v1, sha256(la), sha256(lb)


def test_a_clean_store_has_no_findings(app, tmp_path):
    report = check(tmp_path)
    assert report.findings == []
    assert report.coverage.complete and report.coverage.blobs_hashed == 4
    assert report.repositories == 1 and report.manifests == 1 and report.tags == 1


def test_every_kind_is_documented():
    import regstore.verify

    for kind in KINDS:
        assert f"\n{kind} " in regstore.verify.__doc__, kind


# --- blobs ------------------------------------------------------------------------------


def test_flipped_layer_is_corrupt_and_names_the_image(app, tmp_path):
    b, v1, la, _ = app
    flip(b.path(layout.blob_data(la)), 3)
    report = check(tmp_path)
    assert problems(report) == [("blob-corrupt", ERROR, la, ("app:v1",))]
    [c] = report.corrupt
    assert c.digest == la and c.needed and c.actual != la


def test_truncated_layer_is_one_corrupt_finding_with_the_sizes(app, tmp_path):
    b, v1, la, _ = app
    data = b.path(layout.blob_data(la))
    data.write_bytes(data.read_bytes()[:100])
    report = check(tmp_path)
    assert problems(report) == [("blob-corrupt", ERROR, la, ("app:v1",))]
    assert "100 bytes, manifests say 700" in report.findings[0].message


def test_truncated_layer_without_hashing_is_a_size_mismatch(app, tmp_path):
    b, v1, la, _ = app
    data = b.path(layout.blob_data(la))
    data.write_bytes(data.read_bytes()[:100])
    report = check(tmp_path, metadata_only=True)
    assert problems(report) == [("size-mismatch", ERROR, la, ("app:v1",))]
    assert report.coverage.blobs_hashed == 1  # the manifest only


def test_corrupt_orphan_is_a_warning(app, tmp_path):
    b, *_ = app
    orphan = b.blob(b"nobody uses me")
    flip(b.path(layout.blob_data(orphan)))
    report = check(tmp_path)
    assert problems(report) == [("blob-corrupt", WARNING, orphan, ())]
    assert ("orphan-blob", orphan) in hints(report)


def test_flipped_manifest_is_corrupt(app, tmp_path):
    b, v1, *_ = app
    flip(b.path(layout.blob_data(v1)), 10)
    assert problems(check(tmp_path)) == [("blob-corrupt", ERROR, v1, ("app:v1",))]


def test_deleted_layer_is_missing(app, tmp_path):
    b, v1, la, _ = app
    shutil.rmtree(b.path(layout.blob_dir(la)))
    report = check(tmp_path)
    assert problems(report) == [("missing-blob", ERROR, la, ("app:v1",))]
    assert hints(report) == []  # its layer link is needed: not a leftover


def test_blob_directory_without_data(app, tmp_path):
    b, v1, la, _ = app
    b.path(layout.blob_data(la)).unlink()
    report = check(tmp_path)
    assert problems(report) == [("missing-blob", ERROR, la, ("app:v1",))]
    assert "no data file" in report.findings[0].message
    orphan = b.blob(b"orphan")
    b.path(layout.blob_data(orphan)).unlink()
    assert ("blob-without-data", orphan) in hints(check(tmp_path))


def test_deleted_manifest_is_missing(app, tmp_path):
    b, v1, *_ = app
    shutil.rmtree(b.path(layout.blob_dir(v1)))
    assert problems(check(tmp_path)) == [("missing-manifest", ERROR, v1, ("app:v1",))]


def test_revision_that_is_not_a_manifest(tmp_path):
    b = StoreBuilder(tmp_path)
    digest = b.manifest("app", {"schemaVersion": 2, "mediaType": "text/plain"}, tag="v1")
    assert problems(check(tmp_path)) == [("invalid-manifest", ERROR, digest, ("app:v1",))]


def test_descriptor_size_mismatch(tmp_path):
    b = StoreBuilder(tmp_path)
    layer = b.layer("app", b"twelve bytes")
    cfg = b.layer("app", b"{}")
    b.manifest("app", {
        "schemaVersion": 2, "mediaType": SCHEMA2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": cfg, "size": 2},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": layer, "size": 13}]}, tag="v1")
    report = check(tmp_path)
    assert problems(report) == [("size-mismatch", ERROR, layer, ("app:v1",))]
    assert "12 bytes but manifests say 13" in report.findings[0].message


def test_sha512_blobs_are_hashed_by_their_algorithm(tmp_path):
    b = StoreBuilder(tmp_path)
    data = b"a sha512 layer"
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    b._write(layout.blob_data(digest), data)
    b.link_layer("app", digest)
    cfg = b.layer("app", b"{}")
    b.manifest("app", {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": cfg, "size": 2},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                   "digest": digest, "size": len(data)}]}, tag="v1")
    assert check(tmp_path).findings == []
    flip(b.path(layout.blob_data(digest)))
    assert problems(check(tmp_path)) == [("blob-corrupt", ERROR, digest, ("app:v1",))]


def test_foreign_layers_may_be_absent(tmp_path):
    b = StoreBuilder(tmp_path)
    cfg = b.layer("app", b"{}")
    b.manifest("app", {"schemaVersion": 2, "mediaType": SCHEMA2,
                       "config": {"mediaType": "x", "digest": cfg, "size": 2},
                       "layers": [{"mediaType": "x", "digest": sha256(b"far away"), "size": 8,
                                   "urls": ["https://example.invalid/layer"]}]}, tag="v1")
    assert check(tmp_path).findings == []


# --- links ----------------------------------------------------------------------------


def test_empty_revision_link(app, tmp_path):
    b, v1, *_ = app
    b.path(layout.revision_link("app", v1)).write_bytes(b"")
    report = check(tmp_path)
    assert problems(report) == [("bad-link", ERROR, v1, ("app:v1",))]
    assert "distribution#1960" in report.findings[0].message


def test_empty_current_link(app, tmp_path):
    b, v1, *_ = app
    b.path(layout.tag_current_link("app", "v1")).write_bytes(b"")
    report = check(tmp_path)
    assert problems(report) == [("bad-link", ERROR, None, ("app:v1",))]
    assert hints(report) == []  # the tag may point at anything in its history: not untagged


def test_empty_layer_link_needed_and_not(app, tmp_path):
    b, v1, la, _ = app
    b.path(layout.layer_link("app", la)).write_bytes(b"")
    assert problems(check(tmp_path)) == [("bad-link", ERROR, la, ("app:v1",))]
    spare = b.layer("app", b"spare")
    b.path(layout.layer_link("app", spare)).write_bytes(b"  ")
    assert ("bad-link", WARNING, spare, ()) in problems(check(tmp_path))


def test_empty_tag_index_link_is_a_warning(app, tmp_path):
    b, v1, *_ = app
    (b.path(layout.tag_index_entry_dir("app", "v1", v1)) / "link").write_bytes(b"")
    assert problems(check(tmp_path)) == [("bad-link", WARNING, v1, ())]


def test_link_to_a_different_digest(app, tmp_path):
    b, v1, la, lb = app
    b.path(layout.layer_link("app", la)).write_text(lb)
    report = check(tmp_path)
    assert problems(report) == [("link-mismatch", ERROR, la, ("app:v1",))]
    assert lb in report.findings[0].message
    b.path(layout.layer_link("app", la)).write_text(la)
    other = b.image("app", [b"other"])
    b.path(layout.revision_link("app", v1)).write_text(other)
    assert problems(check(tmp_path)) == [("link-mismatch", ERROR, v1, ("app:v1",))]


def test_layer_link_of_a_swept_blob_is_a_leftover(app, tmp_path):
    b, *_ = app
    ghost = "sha256:" + "9" * 64
    b.link_layer("app", ghost)
    report = check(tmp_path)
    assert problems(report) == []
    assert hints(report) == [("dangling-link", ghost)]


def test_tag_history_of_a_swept_manifest_is_a_leftover(app, tmp_path):
    b, v1, *_ = app
    v2 = b.image("app", [b"second push"], tag="v1")  # v1 moves on; its history keeps v1
    shutil.rmtree(b.path(layout.revision_dir("app", v1)))  # deleted through the API
    shutil.rmtree(b.path(layout.blob_dir(v1)))  # and swept
    report = check(tmp_path)
    assert problems(report) == []
    assert ("dangling-link", v1) in hints(report) and v2


def test_missing_layers_link(app, tmp_path):
    b, v1, la, _ = app
    shutil.rmtree(b.path(layout.layer_link_dir("app", la)))
    report = check(tmp_path)
    assert problems(report) == [("missing-layer-link", ERROR, la, ("app:v1",))]
    assert "blob unknown" in report.findings[0].message


def test_a_blob_is_needed_per_repository(app, tmp_path):
    b, v1, la, _ = app
    b.image("other", [b"layer a" * 100], tag="latest")  # shares layer a, linked in both
    shutil.rmtree(b.path(layout.layer_link_dir("other", la)))
    report = check(tmp_path)
    assert problems(report) == [("missing-layer-link", ERROR, la, ("other:latest",))]
    assert report.findings[0].repository == "other"


# --- tags and indexes -----------------------------------------------------------------


def test_tag_whose_revision_is_gone(app, tmp_path):
    b, v1, *_ = app
    shutil.rmtree(b.path(layout.revision_dir("app", v1)))
    report = check(tmp_path)
    assert problems(report) == [("dangling-tag", ERROR, v1, ("app:v1",))]
    assert "distribution#3899" in report.findings[0].message


def test_tag_without_current(app, tmp_path):
    b, v1, *_ = app
    b.path(layout.tag_current_link("app", "v1")).unlink()
    assert problems(check(tmp_path)) == [("dangling-tag", ERROR, None, ("app:v1",))]


def test_an_empty_tag_directory_is_a_tag_that_cannot_be_pulled(app, tmp_path):
    # The registry lists it among the repository's tags; a pull of it says "manifest unknown".
    b, *_ = app
    b.path(layout.tag_dir("app", "v1")).parent.joinpath("empty").mkdir()
    assert problems(check(tmp_path)) == [("dangling-tag", ERROR, None, ("app:empty",))]


def test_current_not_in_the_tag_index(app, tmp_path):
    b, v1, *_ = app
    shutil.rmtree(b.path(layout.tag_index_dir("app", "v1")))
    assert problems(check(tmp_path)) == [("tag-not-in-index", WARNING, v1, ())]


def test_index_naming_a_missing_child(tmp_path):
    b = StoreBuilder(tmp_path)
    amd64 = b.image("multi", [b"amd64"])
    arm64 = b.image("multi", [b"arm64"])
    top = b.index("multi", [amd64, arm64], tag="latest", media_type=DOCKER_LIST)
    shutil.rmtree(b.path(layout.revision_dir("multi", arm64)))
    report = check(tmp_path)
    assert problems(report) == [("missing-child", ERROR, arm64, ("multi:latest",))]
    assert top in report.findings[0].message


def test_broken_layer_of_an_index_child_names_tag_and_child(tmp_path):
    b = StoreBuilder(tmp_path)
    amd64 = b.image("multi", [b"amd64 layer"])
    arm64 = b.image("multi", [b"arm64 layer"])
    b.index("multi", [amd64, arm64], tag="latest")
    b.index("multi", [amd64], tag="amd64-only")
    flip(b.path(layout.blob_data(sha256(b"amd64 layer"))))
    [(kind, severity, _, images)] = problems(check(tmp_path))
    assert (kind, severity) == ("blob-corrupt", ERROR)
    assert images == ("multi:amd64-only", "multi:latest", f"multi@{amd64}")


def test_untagged_manifest_depending_on_a_blob_is_named_by_digest(app, tmp_path):
    b, v1, la, _ = app
    old = b.image("app", [b"layer a" * 100, b"old"])  # pushed by digest, never tagged
    shutil.rmtree(b.path(layout.blob_dir(la)))
    assert problems(check(tmp_path)) == [("missing-blob", ERROR, la, ("app:v1", f"app@{old}"))]


# --- leftovers ------------------------------------------------------------------------


def test_leftovers_are_hints(app, tmp_path):
    b, v1, *_ = app
    orphan = b.blob(b"12345")
    untagged = b.image("app", [b"by digest"])
    amd64 = b.image("app", [b"child"])
    b.index("app", [amd64], tag="multi")  # a tagged index keeps its child
    referrer = b.image("app", [b"sbom"], subject=v1)  # a referrer of a tagged image stays
    (b.v2 / "repositories" / "empty" / "_layers").mkdir(parents=True)
    report = check(tmp_path)
    assert problems(report) == []
    assert hints(report) == sorted([("orphan-blob", orphan), ("untagged-manifest", untagged),
                                    ("empty-repository", None)])
    assert report.orphan_blobs == 1 and report.orphan_bytes == 5
    assert referrer and amd64


def test_stale_and_fresh_uploads(app, tmp_path):
    b, *_ = app
    old = b.path(layout.upload_dir("app", "0c6b1fd1-old"))
    old.mkdir(parents=True)
    (old / "startedat").write_text("2020-01-01T00:00:00Z")
    new = b.path(layout.upload_dir("app", "7d1e8a2f-new"))
    new.mkdir(parents=True)
    (new / "startedat").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    report = check(tmp_path)
    stale = [f for f in report.findings if f.kind == "stale-upload"]
    assert [f.key for f in stale] == [layout.upload_dir("app", "0c6b1fd1-old")]
    assert stale[0].severity == HINT


def test_stray_entries_in_the_blob_tree(app, tmp_path):
    b, v1, la, _ = app
    (b.path(layout.blob_dir(la)) / "data.bak").write_bytes(b"x")
    misplaced = sha256(b"misplaced")
    wrong = b.v2 / "blobs" / "sha256" / "00" / misplaced.split(":")[1]
    wrong.mkdir(parents=True)
    (wrong / "data").write_bytes(b"misplaced")
    (b.v2 / "blobs" / "sha256" / "00" / "not-a-digest").write_bytes(b"")
    report = check(tmp_path)
    assert problems(report) == []
    strays = sorted(f.key for f in report.findings if f.kind == "stray-entry")
    assert strays == sorted([layout.blob_dir(la) + "/data.bak",
                             f"blobs/sha256/00/{misplaced.split(':')[1]}",
                             "blobs/sha256/00/not-a-digest"])


def test_invalid_tag_name_is_a_warning(app, tmp_path):
    b, v1, *_ = app
    bad = b.v2 / layout.tags_dir("app") / "-bad" / "current"
    bad.mkdir(parents=True)
    (bad / "link").write_text(v1)
    report = check(tmp_path)
    assert [(f.kind, f.severity) for f in report.findings] == [("invalid-tag-name", WARNING)]
    assert "swept" not in report.findings[0].message and "kept" not in report.findings[0].message


def test_invalid_repository_name_is_an_error(app, tmp_path):
    b, *_ = app
    (b.v2 / "repositories" / "Bad" / "_manifests").mkdir(parents=True)
    report = check(tmp_path)
    assert [(f.kind, f.severity) for f in report.findings] == [("invalid-repository-name", ERROR)]


# --- what cannot be read --------------------------------------------------------------


class FailingStore(FilesystemStore):
    """A filesystem store whose reads of some keys fail as a bad disk or a race would."""

    def __init__(self, root, failures):
        super().__init__(root)
        self.failures = failures

    def _fail(self, key):
        error = self.failures.get(key)
        if error is not None:
            raise error

    def open(self, key):
        self._fail(key)
        return super().open(key)

    def read(self, key, max_bytes):
        self._fail(key)
        return super().read(key, max_bytes)


def test_unreadable_layer_is_an_error_not_corruption(app, tmp_path):
    b, v1, la, _ = app
    key = layout.blob_data(la)
    report = verify(FailingStore(tmp_path, {key: StoreError(key, "cannot read: I/O error")}))
    assert problems(report) == [("unreadable", ERROR, la, ("app:v1",))]
    assert report.corrupt == []


def test_a_blob_that_vanishes_while_hashing_is_not_corruption(app, tmp_path):
    b, v1, la, _ = app
    report = verify(FailingStore(tmp_path, {layout.blob_data(la): FileNotFoundError()}))
    assert problems(report) == []
    assert hints(report) == [("vanished", None)]


def test_symlinked_data_is_not_followed(app, tmp_path):
    b, v1, la, _ = app
    data = b.path(layout.blob_data(la))
    real = tmp_path / "elsewhere"
    shutil.move(data, real)
    data.symlink_to(real)
    assert problems(check(tmp_path)) == [("symlink", ERROR, la, ("app:v1",))]


# --- rotation -------------------------------------------------------------------------


def many_layers(tmp_path, n=12):
    b = StoreBuilder(tmp_path)
    layers = [bytes([i]) * (1000 + i) for i in range(n)]
    v1 = b.image("app", layers, tag="v1")
    blobs = {f"sha256:{p.parent.name}" for p in (b.v2 / "blobs").rglob("data")}
    return b, v1, blobs - {v1}  # the config and layers: what rotation is about


def hashed_data(state_before: VerifyState, state_after: VerifyState, manifest: str) -> set[str]:
    return {d for d, e in state_after.entries.items()
            if d != manifest and state_before.entries.get(d) != e}


def test_bounded_runs_cover_disjoint_sets_that_make_the_whole_store(tmp_path):
    b, v1, data = many_layers(tmp_path)
    total = sum(b.path(layout.blob_data(d)).stat().st_size for d in data)
    state = VerifyState()
    covered = []
    for _ in range(2):
        before = VerifyState(dict(state.entries), state.pass_started)
        report = check(tmp_path, state=state, max_bytes=total // 2 + 1100)
        covered.append(hashed_data(before, state, v1))
        assert report.coverage.manifests_hashed == 1
    first, second = covered
    assert first and second and not first & second
    assert first | second == data
    assert report.coverage.pass_complete and report.coverage.never_verified == 0
    # The pass is complete: the next bounded run starts a new one, least recently verified
    # (the first run's blobs) first.
    before = VerifyState(dict(state.entries), state.pass_started)
    report = check(tmp_path, state=state, max_bytes=1)
    assert report.coverage.new_pass
    [again] = hashed_data(before, state, v1)
    assert again in first


def test_a_bounded_run_hashes_least_recently_verified_first(tmp_path):
    b, v1, data = many_layers(tmp_path, 4)
    state = VerifyState()
    check(tmp_path, state=state)  # everything, now
    oldest = sorted(data)[2]
    entry = state.entries[oldest]
    state.record(oldest, entry.size, entry.mtime, entry.at - 1000)
    state.pass_started = time.time() + 1  # a new pass: every blob is due
    before = VerifyState(dict(state.entries), state.pass_started)
    check(tmp_path, state=state, max_bytes=1)
    assert hashed_data(before, state, v1) == {oldest}


def test_known_corrupt_blobs_are_hashed_on_every_run(tmp_path):
    b, v1, data = many_layers(tmp_path, 4)
    bad = sorted(data)[0]
    flip(b.path(layout.blob_data(bad)))
    state = VerifyState()
    for _ in range(4):  # whatever the rotation covers, the error is reported every night
        report = check(tmp_path, state=state, max_bytes=1)
        assert [f.digest for f in report.errors] == [bad]


def test_max_duration_abandons_a_hash_half_done(tmp_path):
    b = StoreBuilder(tmp_path)
    big = os.urandom(3 * 1024 * 1024 + 1)
    v1 = b.image("app", [big], tag="v1")
    now = [1000.0]

    def advance(phase, n, total):  # time runs out as soon as the first MiB is hashed
        if phase == "hashing":
            now[0] += 3600

    state = VerifyState()
    report = check(tmp_path, state=state, max_duration=60, clock=lambda: now[0],
                   progress=advance, jobs=1)
    assert report.coverage.stopped_by == "max-duration"
    assert sha256(big) not in state.entries  # never counted as verified
    assert report.findings == []
    report = check(tmp_path, state=state)
    assert sha256(big) in state.entries and report.coverage.complete
    assert v1


def test_checkpoints_are_offered_while_hashing(tmp_path):
    many_layers(tmp_path, 3)
    calls = []
    check(tmp_path, checkpoint=lambda: calls.append(1), checkpoint_interval=0, jobs=1)
    assert calls


def test_hashing_threads_note_every_blob_once(tmp_path):
    b, v1, data = many_layers(tmp_path, 40)
    bad = sorted(data)[:3]
    for digest in bad:
        flip(b.path(layout.blob_data(digest)))
    saved = []
    state = VerifyState()
    report = check(tmp_path, state=state, jobs=4, checkpoint_interval=0,
                   checkpoint=lambda: saved.append(len(state.entries)))
    assert report.coverage.blobs_hashed == len(data) + 1  # and the manifest
    assert set(state.entries) == data | {v1}
    assert sorted(c.digest for c in report.corrupt) == bad
    assert saved == sorted(saved) and saved[-1] == len(data) + 1  # each after a blob noted


def test_a_failure_in_one_hashing_thread_stops_the_others_and_is_raised(tmp_path, monkeypatch):
    from regstore import verify as verify_mod

    _, _, data = many_layers(tmp_path, 30)
    real = verify_mod._Run._hash_blob
    calls = []

    def failing(self, digest, *args):
        calls.append(digest)
        if len(calls) == 5:
            raise RuntimeError("disk on fire")
        return real(self, digest, *args)

    monkeypatch.setattr(verify_mod._Run, "_hash_blob", failing)
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="disk on fire"):
        check(tmp_path, jobs=3)
    assert threading.active_count() == before  # every hashing thread has ended
    assert len(calls) < len(data)  # the others stopped taking blobs


def test_metadata_only_hashes_manifests_only(app, tmp_path):
    report = check(tmp_path, metadata_only=True)
    assert report.coverage.blobs_hashed == report.coverage.manifests_hashed == 1
    assert not report.coverage.complete


def test_verify_never_writes_into_the_store(app, tmp_path):
    b, v1, la, _ = app
    flip(b.path(layout.blob_data(la)))
    b.blob(b"orphan")
    before = {p: (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
              for p in tmp_path.rglob("*")}
    check(tmp_path)
    after = {p: (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
             for p in tmp_path.rglob("*")}
    assert after == before


# --- the command line -----------------------------------------------------------------


def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(["verify", *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_exit_codes(app, tmp_path):
    b, v1, la, _ = app
    assert cli("--root", str(tmp_path))[0] == 0
    flip(b.path(layout.blob_data(la)))
    code, out, _ = cli("--root", str(tmp_path))
    assert code == 1 and "errors (1):" in out and "[breaks app:v1]" in out
    assert cli("--root", str(tmp_path / "nowhere"))[0] == 3
    with pytest.raises(SystemExit) as usage:
        main(["verify", "--max-bytes", "lots", "--root", str(tmp_path)], out=io.StringIO(),
             err=io.StringIO())
    assert usage.value.code == 2


def test_cli_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    text = capsys.readouterr().out
    for line in ("0    success (verify: no errors", "1    verify found errors",
                 "5    another regstore run holds"):
        assert line in text


def test_cli_refuses_while_a_sweep_holds_the_lock(app, tmp_path):
    with StoreLock(tmp_path, "regstore gc"):
        code, _, err = cli("--root", str(tmp_path))
    assert code == 5 and "regstore gc" in err
    with StoreLock(tmp_path, "regstore verify", exclusive=False):
        assert cli("--root", str(tmp_path))[0] == 0  # readers run side by side


def test_cli_quiet_prints_only_errors(app, tmp_path):
    b, v1, la, _ = app
    b.blob(b"orphan")
    code, out, err = cli("-q", "--root", str(tmp_path))
    assert (code, out, err) == (0, "", "")
    flip(b.path(layout.blob_data(la)))
    code, out, err = cli("-q", "--root", str(tmp_path))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: blob-corrupt: ")


def test_cli_json_report(app, tmp_path):
    b, v1, la, _ = app
    shutil.rmtree(b.path(layout.blob_dir(la)))
    code, out, _ = cli("--json", "--root", str(tmp_path))
    doc = json.loads(out)
    assert code == doc["exit_code"] == 1
    assert (doc["format"], doc["command"], doc["store"]) == (1, "verify", str(tmp_path))
    summary = doc["summary"]
    assert (summary["errors"], summary["kinds"]) == (1, {"missing-blob": 1})
    assert summary["coverage"]["state"] == "absent"
    assert summary["coverage"]["state_file"] == str(default_state_path(tmp_path))
    assert summary["blobs_total"] == 3 and summary["blobs_hashed"] == 3
    assert doc["findings"][0] == {
        "kind": "missing-blob", "severity": "error", "digest": la, "repository": "app",
        "path": layout.blob_data(la), "images": ["app:v1"],
        "message": doc["findings"][0]["message"]}
    assert doc["complete"] is True and doc["quarantined"] == []


def test_cli_json_when_the_store_is_missing(tmp_path):
    code, out, _ = cli("--json", "--root", str(tmp_path))
    assert code == 3 and json.loads(out)["exit_code"] == 3


def test_cli_keeps_a_state_and_detects_its_corruption(tmp_path):
    many_layers(tmp_path, 6)
    code, out, _ = cli("--json", "--max-bytes", "2K", "--root", str(tmp_path))
    first = json.loads(out)["summary"]
    assert first["coverage"]["stopped_by"] == "max-bytes" and not first["coverage"]["pass_complete"]
    path = default_state_path(tmp_path)
    assert load_state(path) is not None
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    code, out, _ = cli("--json", "--max-bytes", "2K", "--root", str(tmp_path))
    doc = json.loads(out)
    assert code == 0 and doc["summary"]["coverage"]["state"] == "corrupt"
    assert [(f["kind"], f["severity"]) for f in doc["findings"]] == [("state-corrupt", WARNING)]
    assert doc["complete"] and doc["summary"]["blobs_hashed"] == doc["summary"]["blobs_total"]
    assert load_state(path) is not None  # rewritten whole


def test_cli_no_state_writes_nothing(app, tmp_path):
    assert cli("--no-state", "--root", str(tmp_path))[0] == 0
    assert not (tmp_path / ".regstore").exists()


def test_cli_state_file_option(app, tmp_path):
    elsewhere = tmp_path / "state" / "mine"
    assert cli("--state-file", str(elsewhere), "--root", str(tmp_path))[0] == 0
    assert load_state(elsewhere) is not None
    assert not default_state_path(tmp_path).exists()


def test_cli_refuses_a_state_file_inside_the_docker_tree(app, tmp_path):
    inside = tmp_path / "docker" / "registry" / "v2" / "verify-state"
    code, _, err = cli("--state-file", str(inside), "--root", str(tmp_path))
    assert code == 3 and "docker tree" in err and not inside.exists()


def test_cli_quarantine_needs_read_only_or_force(app, tmp_path):
    b, v1, la, _ = app
    flip(b.path(layout.blob_data(la)))
    code, _, err = cli("--quarantine", str(tmp_path / "q"), "--root", str(tmp_path))
    assert code == 4 and "read-only" in err
    assert b.path(layout.blob_data(la)).exists()
    code, out, err = cli("--force", "--quarantine", str(tmp_path / "q"), "--root", str(tmp_path))
    assert code == 1 and "moved 1 corrupt blob" in err
    assert not b.path(layout.blob_dir(la)).exists()
    code, out, _ = cli("--json", "--root", str(tmp_path))
    [finding] = json.loads(out)["findings"]
    assert (finding["kind"], finding["digest"]) == ("missing-blob", la)


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bars_on_a_terminal_only(app, tmp_path):
    from regstore.cli import Output, _phase_bars

    for err, quiet, drawn in ((Terminal(), False, True), (io.StringIO(), False, False),
                              (Terminal(), True, False)):
        with _phase_bars(Output(quiet, False, io.StringIO(), err)) as progress:
            check(tmp_path, progress=progress)
        assert ("hashing" in err.getvalue()) is drawn


# --- corruption of copies of the real-registry fixtures ---------------------------------
#
# Each test breaks one thing in a copy of fixtures/mixed (written by docker-registry 2.8.2) and
# asserts exactly the errors and warnings verify reports, the images they name and the exit
# code. The expected images are computed from the fixture's record alone.

@functools.cache
def mixed_record():
    return fixture_record("mixed")


def label(name, repo=None):
    """The digest of the blob the fixture builder labelled ``name``."""
    return next(b["digest"] for b in mixed_record()["blobs"]
                if b["label"] == name and (repo is None or b["repo"] == repo))


def tagged(repo, tag):
    return next(t["digest"] for t in mixed_record()["tags"]
                if (t["repo"], t["tag"]) == (repo, tag))


def expected_images(digest):
    """Every image that needs ``digest`` according to the record: manifests that are it or
    list it among their blobs, and the indexes above them; by tag where tagged."""
    live = {(m["repo"], m["digest"]): m for m in mixed_record()["manifests"] if not m["deleted"]}
    parents = {}
    for (repo, d), m in live.items():
        for child in m.get("children", []):
            parents.setdefault((repo, child), set()).add((repo, d))
    stack = [k for k, m in live.items() if k[1] == digest or digest in m.get("blobs", [])]
    seen = set()
    while stack:
        key = stack.pop()
        if key not in seen:
            seen.add(key)
            stack.extend(parents.get(key, ()))
    names = set()
    for repo, d in seen:
        tags = live[(repo, d)].get("tags_now") or []
        names |= {f"{repo}:{t}" for t in tags} if tags else {f"{repo}@{d}"}
    return tuple(sorted(names, key=lambda n: ("@" in n, n)))


@pytest.fixture
def mixed(tmp_path):
    root = copy_fixture("mixed", tmp_path / "store")
    return root, root / layout.V2_PREFIX


def verify_json(root, *args):
    out = io.StringIO()
    code = main(["verify", "--json", "--no-state", "--root", str(root), *args], out=out,
                err=io.StringIO())
    doc = json.loads(out.getvalue())
    assert doc["exit_code"] == code
    found = sorted((f["kind"], f["severity"], f["digest"], tuple(f["images"]))
                   for f in doc["findings"] if f["severity"] != HINT)
    return code, found, doc


def test_fixture_flipped_shared_layer(mixed):
    root, v2 = mixed
    base1 = label("base-1")
    flip(v2 / layout.blob_data(base1), 500)
    code, found, doc = verify_json(root)
    images = expected_images(base1)
    assert code == 1 and found == [("blob-corrupt", ERROR, base1, images)]
    assert {"app:v1", "app:v2", "team/app/api:1.0", "multi/docker:latest", "tools:stable",
            "foreign:v1"} <= set(images)


def test_fixture_flipped_config(mixed):
    root, v2 = mixed
    config = label("app v2 config")
    flip(v2 / layout.blob_data(config), 0)
    assert verify_json(root)[:2] == (1, [("blob-corrupt", ERROR, config, ("app:v2",))])


def test_fixture_flipped_manifest_of_an_untagged_index_child(mixed):
    root, v2 = mixed
    index = tagged("multi/docker", "latest")
    child = next(m for m in mixed_record()["manifests"] if m["digest"] == index)["children"][0]
    flip(v2 / layout.blob_data(child), 40)
    code, found, _ = verify_json(root)
    assert expected_images(child) == ("multi/docker:latest", f"multi/docker@{child}")
    assert (code, found) == (1, [("blob-corrupt", ERROR, child, expected_images(child))])


def test_fixture_truncated_blob(mixed):
    root, v2 = mixed
    layer = label("api-1")
    data = v2 / layout.blob_data(layer)
    data.write_bytes(data.read_bytes()[:1000])
    code, found, doc = verify_json(root)
    assert (code, found) == (1, [("blob-corrupt", ERROR, layer, ("team/app/api:1.0",
                                                                  "team/app/api:latest"))])
    assert "1000 bytes, manifests say 2087" in doc["findings"][0]["message"]
    code, found, _ = verify_json(root, "--metadata-only")
    assert (code, found) == (1, [("size-mismatch", ERROR, layer, ("team/app/api:1.0",
                                                                   "team/app/api:latest"))])


def test_fixture_deleted_blob_a_tag_needs(mixed):
    root, v2 = mixed
    layer = label("tools-1")
    shutil.rmtree(v2 / layout.blob_dir(layer))
    assert verify_json(root)[:2] == (1, [("missing-blob", ERROR, layer, ("tools:stable",))])


def test_fixture_empty_revision_link(mixed):
    root, v2 = mixed
    digest = tagged("app", "v2")
    (v2 / layout.revision_link("app", digest)).write_bytes(b"")
    code, found, doc = verify_json(root)
    assert (code, found) == (1, [("bad-link", ERROR, digest, ("app:v2",))])


def test_fixture_layer_link_to_a_different_digest(mixed):
    root, v2 = mixed
    layer, other = label("app-v2"), label("base-2", "app")
    (v2 / layout.layer_link("app", layer)).write_text(other)
    assert verify_json(root)[:2] == (1, [("link-mismatch", ERROR, layer, ("app:v2",))])


def test_fixture_manifest_naming_a_missing_child(mixed):
    root, v2 = mixed
    index = tagged("multi/oci", "v1")
    child = next(m for m in mixed_record()["manifests"] if m["digest"] == index)["children"][1]
    shutil.rmtree(v2 / layout.revision_dir("multi/oci", child))
    assert verify_json(root)[:2] == (1, [("missing-child", ERROR, child, ("multi/oci:v1",))])


def test_fixture_missing_layers_link(mixed):
    root, v2 = mixed
    base1 = label("base-1")
    shutil.rmtree(v2 / layout.layer_link_dir("foreign", base1))
    code, found, doc = verify_json(root)
    assert (code, found) == (1, [("missing-layer-link", ERROR, base1, ("foreign:v1",))])
    assert doc["findings"][0]["repository"] == "foreign"


def test_fixture_descriptor_size_mismatch(mixed):
    root, v2 = mixed
    old = tagged("tools", "stable")
    doc = json.loads((v2 / layout.blob_data(old)).read_bytes())
    layer = doc["layers"][0]["digest"]
    doc["layers"][0]["size"] += 1
    body = json.dumps(doc, indent=3).encode()
    new = sha256(body)
    for key, content in ((layout.blob_data(new), body),
                         (layout.revision_link("tools", new), new.encode()),
                         (layout.tag_current_link("tools", "stable"), new.encode()),
                         (layout.tag_index_entry_dir("tools", "stable", new) + "/link",
                          new.encode())):
        (v2 / key).parent.mkdir(parents=True, exist_ok=True)
        (v2 / key).write_bytes(content)
    assert verify_json(root)[:2] == (1, [("size-mismatch", ERROR, layer, ("tools:stable",))])


def test_fixture_tag_whose_revision_is_gone(mixed):
    root, v2 = mixed
    digest = tagged("app", "v2")
    shutil.rmtree(v2 / layout.revision_dir("app", digest))
    assert verify_json(root)[:2] == (1, [("dangling-tag", ERROR, digest, ("app:v2",))])


@pytest.mark.parametrize("name", fixture_names())
def test_fixture_clean_stores_verify_with_hints_only(tmp_path, name):
    root = copy_fixture(name, tmp_path / "store")
    code, found, doc = verify_json(root)
    assert (code, found) == (0, [])
    assert doc["complete"] and doc["summary"]["blobs_hashed"] == doc["summary"]["blobs_total"]
    orphans = {f["digest"] for f in doc["findings"] if f["kind"] == "orphan-blob"}
    assert {o["digest"] for o in fixture_record(name)["orphan_blobs"]} <= orphans


# --- rotation and the state file on a fixture ------------------------------------------


def state_times(root):
    return {d: e.at for d, e in load_state(default_state_path(root)).entries.items()}


def test_fixture_rotation_covers_the_store_in_disjoint_runs(mixed):
    root, v2 = mixed
    sizes = {f"sha256:{p.parent.name}": p.stat().st_size for p in (v2 / "blobs").rglob("data")}
    manifests = {m["digest"] for m in mixed_record()["manifests"] if not m["deleted"]}
    data = set(sizes) - manifests
    budget = sum(sizes[d] for d in data) // 2 + max(sizes.values())
    runs = []
    for _ in range(2):
        before = state_times(root) if default_state_path(root).exists() else {}
        out = io.StringIO()
        main(["verify", "--json", "--max-bytes", str(budget), "--root", str(root)], out=out,
             err=io.StringIO())
        after = state_times(root)
        runs.append({d for d in data if after.get(d) != before.get(d)})
        summary = json.loads(out.getvalue())["summary"]
    first, second = runs
    assert first and second and not first & second and first | second == data
    assert summary["coverage"]["pass_complete"] and summary["coverage"]["never_verified"] == 0


def test_fixture_corrupt_state_is_reported_and_everything_is_verified(mixed):
    root, v2 = mixed
    main(["verify", "-q", "--max-bytes", "4K", "--root", str(root)], out=io.StringIO(),
         err=io.StringIO())
    path = default_state_path(root)
    flip(path, 200)
    out = io.StringIO()
    code = main(["verify", "--max-bytes", "4K", "--root", str(root)], out=out, err=io.StringIO())
    text = out.getvalue()
    assert code == 0 and "warning: state-corrupt:" in text and "checksum" in text
    assert "the state file was corrupt and ignored" in text
    assert "(100%)" in text  # every byte hashed despite --max-bytes
    assert state_times(root)  # and a good state written in its place


def test_fixture_state_survives_a_run_killed_while_writing_it(mixed, tmp_path):
    root, v2 = mixed
    main(["verify", "-q", "--max-bytes", "4K", "--root", str(root)], out=io.StringIO(),
         err=io.StringIO())
    path = default_state_path(root)
    before = path.read_bytes()
    # A second run is SIGKILLed half-way through writing the new state.
    code = (
        "import os, signal, sys\n"
        "from regstore import state\n"
        "from regstore.cli import main\n"
        "real = os.write\n"
        "def dies(fd, data):\n"
        "    real(fd, bytes(data[: len(data) // 2]))\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "state.os.write = dies\n"
        "main(['verify', '-q', '--max-bytes', '4K', '--root', sys.argv[1]])\n")
    proc = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert path.read_bytes() == before  # the previous state, whole
    out = io.StringIO()
    assert main(["verify", "--json", "--max-bytes", "4K", "--root", str(root)], out=out,
                err=io.StringIO()) == 0
    assert json.loads(out.getvalue())["summary"]["coverage"]["state"] == "ok"


def test_cli_interrupted_run_keeps_what_it_verified(tmp_path, monkeypatch):
    from regstore import verify as verify_mod

    many_layers(tmp_path, 6)
    real = verify_mod._Run._hash_blob
    calls = []

    def interrupted(self, digest, *args):
        calls.append(digest)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third blob is hashed
        return real(self, digest, *args)

    monkeypatch.setattr(verify_mod._Run, "_hash_blob", interrupted)
    code, _, err = cli("--jobs", "1", "--root", str(tmp_path))
    assert code == 130 and "interrupted" in err
    kept = load_state(default_state_path(tmp_path)).entries
    assert set(calls[:2]) <= set(kept) and calls[2] not in kept


def _sigint_as_from_a_terminal() -> None:
    """In the child, before it runs Python: SIGINT handled as by default. A suite started
    with SIGINT ignored (a background job of a non-interactive shell) passes that on, and
    Python then installs no handler for it: the Ctrl-C these tests send would be lost."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _verify_held_from_the_third_hash(root: Path, third: str, *args: str) -> subprocess.Popen:
    """verify --jobs 2 of ``root`` in a process of its own, whose first two blobs hash
    normally; from the third on each hashing thread stands in for a long hash that looks every
    50 ms whether it is told to stop (as the real loop does between chunks). ``third``, a line
    of Python, runs once, at the third; ``args`` follow the root in its sys.argv."""
    code = (
        "import signal, sys, threading, time\n"
        "from pathlib import Path\n"
        "from regstore import verify\n"
        "from regstore.cli import main\n"
        "real = verify._Run._hash_blob\n"
        "calls = []\n"
        "def slow(self, digest, stop, deadline, on_bytes, buffer):\n"
        "    calls.append(digest)\n"
        "    if len(calls) <= 2:\n"
        "        return real(self, digest, stop, deadline, on_bytes, buffer)\n"
        "    if len(calls) == 3:\n"
        f"        {third}\n"
        "    while not stop.wait(0.05):\n"
        "        pass\n"
        "    return verify._Failed('aborted')\n"
        "verify._Run._hash_blob = slow\n"
        "sys.exit(main(['verify', '--jobs', '2', '--root', sys.argv[1]]))\n")
    return subprocess.Popen([sys.executable, "-c", code, str(root), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parent.parent,
                            preexec_fn=_sigint_as_from_a_terminal)


def test_ctrl_c_the_system_hands_to_a_hashing_thread_still_stops_verify(tmp_path):
    many_layers(tmp_path, 8)
    # The signal goes to a thread that hashes, as the system may choose, once the main thread
    # waits for them: the main thread learns of it only when it runs again.
    proc = _verify_held_from_the_third_hash(
        tmp_path, "time.sleep(0.3); signal.pthread_kill(threading.get_ident(), signal.SIGINT)")
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130 and "interrupted" in err


def test_ctrl_c_while_threads_hash_stops_them_and_keeps_what_they_verified(tmp_path):
    _, _, data = many_layers(tmp_path, 8)
    started = tmp_path / "hashing-started"
    # SIGINT comes to the main thread, which is then waiting for the hashing threads.
    proc = _verify_held_from_the_third_hash(tmp_path, "Path(sys.argv[2]).touch()", str(started))
    deadline = time.monotonic() + 30
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert started.exists(), proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err
    kept = load_state(default_state_path(tmp_path)).entries
    assert 1 <= len(set(kept) & data) <= 2  # what was hashed whole, and nothing else
