"""gc and verify on a real S3 store: Ceph's radosgw, written by the real registry's s3 driver.

The mixed scenario of fixtures/build.py is pushed once into a bucket through the registry's API
(``mixed_s3``); tests that change a store work on a server-side copy of it. regstore must find
on the bucket exactly what it finds on the committed filesystem fixture of the same scenario,
agree with ``docker-registry garbage-collect --dry-run`` run on the bucket (with the documented
differences of tests/test_gc_realregistry.py), and leave every live image pullable through the
registry after a real sweep.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.support import copy_fixture, run_json
from tests.support.ceph import REGISTRY_ENV_WITHOUT, Ceph
from tests.support.realgc import run_real_gc
from tests.support.registry import (assert_blob_gone, assert_manifest_gone, pull_all,
                                    pull_manifest_by_digest, pull_tree, tagged_images)
from tests.test_gc_realregistry import assert_agrees_with_registry_gc, kept_by_regstore_only

pytestmark = [pytest.mark.ceph, pytest.mark.registry]

ROOT = Path(__file__).resolve().parent.parent

V2 = "store/docker/registry/v2/"




@pytest.fixture(scope="session")
def mixed_s3(ceph: Ceph, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The mixed scenario, pushed into a bucket by the real registry. Never changed: tests that
    sweep take a copy (:func:`fresh`)."""
    bucket = ceph.new_bucket("mixed")
    work = tmp_path_factory.mktemp("mixed-s3")
    record = ceph.push_scenario("mixed", bucket, "/store", workdir=work / "registry")
    config = ceph.config(work / "config.yml", bucket)
    return SimpleNamespace(bucket=bucket, record=record, config=config)


def fresh(ceph: Ceph, mixed_s3: SimpleNamespace, tmp_path: Path, *,
          readonly: bool = True) -> tuple[str, Path]:
    bucket = ceph.copy_store(mixed_s3.bucket)
    return bucket, ceph.config(tmp_path / "config.yml", bucket, readonly=readonly,
                               extra=mixed_s3.record.get("extra_config"))


def comparable(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((i["kind"], i["digest"], i["repository"], i["tag"], i["path"], i["size"])
                  for i in items)


# --- the same answers as on a filesystem ---------------------------------------------------


@pytest.mark.parametrize("untagged", [False, True], ids=["plain", "delete-untagged"])
def test_gc_dry_run_on_s3_matches_the_filesystem(tmp_path, mixed_s3, untagged):
    root = copy_fixture("mixed", tmp_path / "fs")
    flags = ["--dry-run", "--min-age", "0", "--keep-uploads"] + (["-m"] if untagged else [])
    code, on_fs, _ = run_json(["gc", *flags, "--root", str(root)])
    assert code == 0
    code, on_s3, _ = run_json(["gc", *flags, str(mixed_s3.config)])
    assert code == 0, on_s3
    assert on_s3["store"].startswith(f"s3://{mixed_s3.bucket}/store/docker/registry/v2")
    assert comparable(on_s3["items"]) == comparable(on_fs["items"])
    assert on_s3["summary"] == on_fs["summary"]
    assert [f["kind"] for f in on_s3["findings"]] == [f["kind"] for f in on_fs["findings"]]
    assert any(i["kind"] == "blob" for i in on_s3["items"])


def test_verify_on_s3_matches_the_filesystem(tmp_path, mixed_s3):
    root = copy_fixture("mixed", tmp_path / "fs")
    code, on_fs, _ = run_json(["verify", "--no-state", "--root", str(root)])
    assert code == 0
    code, on_s3, _ = run_json(["verify", "--no-state", str(mixed_s3.config)])
    assert code == 0, on_s3["findings"]
    fs_summary, s3_summary = dict(on_fs["summary"]), dict(on_s3["summary"])
    fs_summary.pop("coverage"), s3_summary.pop("coverage")
    assert s3_summary == fs_summary
    assert on_s3["summary"]["coverage"]["blobs_fraction"] == 1.0
    assert sorted((f["kind"], f["severity"], f["digest"], f["repository"])
                  for f in on_s3["findings"]) == \
        sorted((f["kind"], f["severity"], f["digest"], f["repository"])
               for f in on_fs["findings"] if f["kind"] != "stale-upload")


def test_du_and_explain_on_s3_match_the_filesystem(tmp_path, mixed_s3):
    root = copy_fixture("mixed", tmp_path / "fs")
    base = mixed_s3.record["tags"][0]
    for argv in (["du"], ["explain", base["digest"]]):
        code, on_fs, _ = run_json(argv + ["--root", str(root)])
        assert code == 0
        code, on_s3, _ = run_json(argv + [str(mixed_s3.config)])
        assert code == 0
        on_fs.pop("store"), on_s3.pop("store")
        assert on_s3 == on_fs


@pytest.mark.parametrize("untagged", [False, True], ids=["plain", "delete-untagged"])
def test_dry_run_agrees_with_the_registry_gc_on_s3(ceph, tmp_path, mixed_s3, untagged):
    real = run_real_gc(mixed_s3.config, dry_run=True, delete_untagged=untagged,
                       environ_without=REGISTRY_ENV_WITHOUT)
    code, report, _ = run_json(["gc", "--dry-run", "--min-age", "0", str(mixed_s3.config)]
                               + (["-m"] if untagged else []))
    assert code == 0, report["findings"]
    extra_manifests = assert_agrees_with_registry_gc(report, real, mixed_s3.record, untagged)
    assert extra_manifests or not untagged
    ours_blobs = {i["digest"] for i in report["items"] if i["kind"] == "blob"}
    keys = ceph.keys(mixed_s3.bucket, V2)
    on_bucket = {"sha256:" + k.split("/")[-2] for k in keys if k.startswith(V2 + "blobs/")}
    links = {(k[len(V2 + "repositories/"):].split("/_layers/")[0], "sha256:" + k.split("/")[-2])
             for k in keys if "/_layers/" in k}
    assert {(i["repository"], i["digest"]) for i in report["items"]
            if i["kind"] == "layer-link"} == \
        {(r, d) for r, d in links if d in ours_blobs or d not in on_bucket}


def test_a_large_blob_store_is_walked_prefix_by_prefix_with_the_same_result(mixed_s3,
                                                                          monkeypatch):
    import regstore.inventory as inventory
    from regstore.config import load_config, s3_settings
    from regstore.store.s3 import S3Store

    store = S3Store.from_settings(s3_settings(load_config(mixed_s3.config, {})))
    whole = inventory.take_inventory(store, jobs=8)
    requests = store.requests
    # Pretend the store is large: after 5 objects the walk goes on prefix by prefix.
    monkeypatch.setattr(inventory, "SEQUENTIAL_WALK_LIMIT", 5)
    monkeypatch.setattr(inventory, "_WALK_CHECK_EVERY", 5)
    split = inventory.take_inventory(store, jobs=8)
    assert store.requests - requests > requests + 20  # a walk per prefix
    assert (split.blobs, split.blob_stats, split.blob_strays, split.findings) == \
        (whole.blobs, whole.blob_stats, whole.blob_strays, whole.findings)
    assert len(whole.blobs) == 69


def test_tag_links_are_known_from_their_etag_and_read_when_not(ceph, mixed_s3, tmp_path):
    import regstore.inventory as inventory
    from regstore.config import load_config, s3_settings
    from regstore.store.s3 import S3Store

    bucket = ceph.copy_store(mixed_s3.bucket)
    client = ceph.client()
    # One current link rewritten by hand, with a newline: its ETag is no digest's MD5 now.
    edited = f"{V2}repositories/tools/_manifests/tags/stable/current/link"
    target = client.get_object(Bucket=bucket, Key=edited)["Body"].read()
    client.put_object(Bucket=bucket, Key=edited, Body=target + b"\n")
    settings = s3_settings(load_config(ceph.config(tmp_path / "c.yml", bucket), {}))
    store = S3Store.from_settings(settings)
    read: list[str] = []
    get_object = store.client.get_object

    def counted(**params: Any) -> Any:
        read.append(params["Key"])
        return get_object(**params)

    store.client.get_object = counted
    inv = inventory.take_inventory(store, jobs=8)
    assert [k for k in read if k.endswith("/current/link")] == [edited]
    tags = {(r, t.name): t.current for r, repo in inv.repositories.items()
            for t in repo.tags.values()}
    assert tags == {(t["repo"], t["tag"]): t["digest"] for t in mixed_s3.record["tags"]}
    assert tags["tools", "stable"] == target.decode()


@pytest.mark.parametrize("forced", [False, True], ids=["light", "boto3"])
def test_a_dry_run_reads_without_importing_boto3(mixed_s3, forced):
    code = ("import sys; from regstore.cli import main; "
            f"code = main(['gc', '--dry-run', '-q', {str(mixed_s3.config)!r}]); "
            "print(code, 'boto3' in sys.modules, 'botocore' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "REGSTORE_S3_CLIENT"}
    if forced:
        env["REGSTORE_S3_CLIENT"] = "boto3"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120)
    assert out.stdout.split() == ["0", str(forced), str(forced)], out.stderr


# --- real sweeps --------------------------------------------------------------------------


@pytest.mark.parametrize("untagged", [False, True], ids=["plain", "delete-untagged"])
def test_every_live_image_pulls_from_the_bucket_after_a_real_sweep(ceph, tmp_path, mixed_s3,
                                                                    untagged):
    bucket, config = fresh(ceph, mixed_s3, tmp_path)
    record = mixed_s3.record
    time.sleep(1.2)  # the copy is brand new: let it outgrow a one-second grace period
    flags = ["--min-age", "1s"] + (["-m"] if untagged else [])
    code, report, err = run_json(["gc", *flags, str(config)])
    assert code == 0, (report, err)
    assert report["summary"]["failed"] == 0 and report["summary"]["skipped"] == 0
    removed = report["items"]
    assert any(i["kind"] == "blob" for i in removed)
    keys = ceph.keys(bucket, V2)
    for item in removed:
        assert not any(k.startswith(V2 + item["path"] + "/") for k in keys), item
    assert not ceph.keys(bucket, "store/.regstore/"), "the lock is released"
    extra_manifests, _ = kept_by_regstore_only(record)
    with ceph.registry(bucket, workdir=tmp_path / "reg", readonly=True,
                       extra=record.get("extra_config")) as registry:
        client = registry.client
        pull_all(client, tagged_images(record))
        for repo, digest in extra_manifests:
            body = pull_manifest_by_digest(client, repo, digest)
            pull_tree(client, repo, body, f"{repo}@{digest}")
        for item in removed:
            if item["kind"] == "manifest":
                assert_manifest_gone(client, item["repository"], item["digest"])
            elif item["kind"] == "layer-link":
                assert_blob_gone(client, item["repository"], item["digest"])
    code, again, _ = run_json(["gc", "--dry-run", "--min-age", "0", str(config)]
                         + (["-m"] if untagged else []))
    assert code == 0 and again["items"] == []
    real = run_real_gc(config, dry_run=True, delete_untagged=False,
                       environ_without=REGISTRY_ENV_WITHOUT)
    assert real.eligible_blobs == set()


def test_the_grace_period_keeps_a_fresh_s3_store_whole(ceph, tmp_path, mixed_s3):
    bucket, config = fresh(ceph, mixed_s3, tmp_path)
    before = ceph.keys(bucket)
    code, report, err = run_json(["gc", "-m", "--min-age", "1h", str(config)])
    assert code == 0, err
    assert report["items"] == []
    assert {p["kind"] for p in report["protected"]} >= {"blob", "layer-link", "manifest"}
    assert ceph.keys(bucket) == before


def test_an_s3_sweep_alongside_pushes_is_refused(ceph, tmp_path, mixed_s3):
    bucket, config = fresh(ceph, mixed_s3, tmp_path, readonly=False)
    before = ceph.keys(bucket)
    code, report, _ = run_json(["gc", "--min-age", "1h", str(config)])
    assert code == 4
    assert "S3" in report["error"] and "readonly.enabled: true" in report["error"]
    assert ceph.keys(bucket) == before


def test_a_stale_upload_goes_with_its_multipart_upload(ceph, tmp_path):
    bucket = ceph.new_bucket("up")
    with ceph.registry(bucket, workdir=tmp_path / "reg") as registry:
        registry.client.push_blob("app", b"a layer")
        uuid = registry.client.start_upload("app", b"half a layer")
    client = ceph.client()
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    config = ceph.config(tmp_path / "config.yml", bucket, readonly=True)
    time.sleep(1.2)
    code, report, err = run_json(["gc", "--min-age", "1s", "--uploads-older-than", "1s",
                             "--max-delete-fraction", "1", str(config)])
    assert code == 0, (report, err)
    assert [(i["kind"], i["digest"]) for i in report["items"]
            if i["kind"] == "upload"] == [("upload", uuid)]
    assert not [k for k in ceph.keys(bucket) if "/_uploads/" in k]
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")


# --- what stays filesystem-only, and a store that is not there -------------------------------


@pytest.mark.parametrize("argv, words", [
    (["gc", "CONFIG", "--quarantine", "q"], "--quarantine works on filesystem stores only"),
    (["verify", "CONFIG", "--quarantine", "q", "--force"], "verify --quarantine works on "
                                                           "filesystem stores only"),
    (["restore", "q", "CONFIG"], "regstore restore works on filesystem stores only"),
])
def test_quarantine_and_restore_say_they_need_a_filesystem_store(tmp_path, mixed_s3, argv,
                                                                 words):
    code, report, _ = run_json([str(mixed_s3.config) if a == "CONFIG" else a for a in argv])
    assert code == 3
    assert words in report["error"]


def test_a_bucket_or_prefix_without_a_store_is_a_clear_error(ceph, tmp_path):
    config = ceph.config(tmp_path / "missing.yml", "no-such-bucket-here")
    code, report, _ = run_json(["gc", "--dry-run", str(config)])
    assert code == 3 and "cannot reach the store s3://no-such-bucket-here" in report["error"]
    config = ceph.config(tmp_path / "empty.yml", ceph.new_bucket("empty"))
    code, report, _ = run_json(["gc", "--dry-run", str(config)])
    assert code == 3 and "holds no registry store under 'store/docker/registry/v2/'" in \
        report["error"]


def test_verify_keeps_its_state_in_the_cache_directory(tmp_path, mixed_s3, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code, report, _ = run_json(["verify", str(mixed_s3.config)])
    assert code == 0
    state_file = Path(report["summary"]["coverage"]["state_file"])
    assert state_file.parent == tmp_path / "cache" / "regstore" and state_file.is_file()
    code, again, _ = run_json(["verify", "--max-bytes", "1", str(mixed_s3.config)])
    assert again["summary"]["coverage"]["state"] == "ok"
