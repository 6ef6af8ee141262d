"""The harness that drives the real registry works: push, pull, fixtures, and its GC's output.

These tests prove the ground truth other end-to-end tests stand on: that ``RealRegistry`` serves
a store, that every image recorded for a committed fixture pulls from a copy of it, and that
``run_real_gc`` parses what ``docker-registry garbage-collect`` prints.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import copy_fixture, fixture_names, fixture_record
from tests.support.realgc import parse_gc_output, run_real_gc
from tests.support.registry import (
    MEDIA_TYPE_OCI_EMPTY,
    MEDIA_TYPE_OCI_MANIFEST,
    MEDIA_TYPE_SCHEMA2,
    MEDIA_TYPE_SCHEMA2_CONFIG,
    MEDIA_TYPE_SCHEMA2_LAYER,
    RealRegistry,
    RegistryClient,
    RegistryHTTPError,
    assert_blob_gone,
    assert_manifest_gone,
    manifest_status,
    pull_all,
    pull_manifest_by_digest,
    registry_binary,
    sha256_digest,
    tagged_images,
    write_config,
)

_no_registry = pytest.mark.skipif(
    registry_binary() is None,
    reason="docker-registry (Debian's CNCF Distribution 2.8) is not on PATH",
)


def needs_registry(test: Callable[..., None]) -> Callable[..., None]:
    """Mark a test as driving the real registry, skipped when it is not installed."""
    return pytest.mark.registry(_no_registry(test))


def tree_digest(root: Path) -> str:
    """Hash every path and file content under ``root``, to show a run changed no byte."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def push_image(client: RegistryClient, repo: str, tag: str, layers: list[bytes]) -> str:
    """Push a schema2 image of ``layers`` as ``repo:tag`` and return its digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {}}).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_SCHEMA2,
        "config": {
            "mediaType": MEDIA_TYPE_SCHEMA2_CONFIG,
            "size": len(config),
            "digest": client.push_blob(repo, config),
        },
        "layers": [
            {
                "mediaType": MEDIA_TYPE_SCHEMA2_LAYER,
                "size": len(d),
                "digest": client.push_blob(repo, d),
            }
            for d in layers
        ],
    }
    return client.push_manifest(repo, tag, json.dumps(manifest).encode(), MEDIA_TYPE_SCHEMA2)


@needs_registry
def test_push_pull_round_trip(tmp_path: Path) -> None:
    with RealRegistry(tmp_path / "root", workdir=tmp_path / "work") as reg:
        client = reg.client
        layer = b"layer bytes " * 40
        dgst = push_image(client, "team/app", "v1", [layer])
        pull_all(client, [("team/app", "v1", dgst)])
        assert client.tags("team/app") == ["v1"]
        assert client.catalog() == ["team/app"]
        assert client.get_blob("team/app", sha256_digest(layer)) == layer
        uuid = client.start_upload("team/app", b"half a layer")
        assert (tmp_path / "root/docker/registry/v2/repositories/team/app/_uploads" / uuid).is_dir()

        client.delete_manifest("team/app", dgst)
        assert_manifest_gone(client, "team/app", dgst)
        # A soft delete: the layer is still served until a garbage collection.
        assert client.head_blob("team/app", sha256_digest(layer)) == 200
        with pytest.raises(AssertionError, match="does not pull"):
            pull_all(client, [("team/app", "v1", dgst)])
    assert reg.config_path.name == "config.yml"


@needs_registry
def test_pull_all_names_a_wrong_digest(tmp_path: Path) -> None:
    with RealRegistry(tmp_path / "root", workdir=tmp_path / "work") as reg:
        dgst = push_image(reg.client, "app", "v1", [b"x" * 300])
        with pytest.raises(AssertionError, match=r"app:v1: expected sha256:0+, registry serves"):
            pull_all(reg.client, [("app", "v1", "sha256:" + "0" * 64)])
        assert pull_manifest_by_digest(reg.client, "app", dgst)


@needs_registry
def test_readonly_registry_refuses_pushes(tmp_path: Path) -> None:
    with RealRegistry(tmp_path / "root", workdir=tmp_path / "work", readonly=True) as reg:
        with pytest.raises(RegistryHTTPError) as error:
            reg.client.push_blob("app", b"data")
    assert error.value.status == 405


@needs_registry
def test_startup_failure_reports_the_log(tmp_path: Path) -> None:
    broken = {"log": {"formatter": "no-such-formatter"}}
    with pytest.raises(RuntimeError, match="no-such-formatter"):
        with RealRegistry(tmp_path / "root", workdir=tmp_path / "work", extra_config=broken):
            pass


@needs_registry
@pytest.mark.parametrize("name", fixture_names())
def test_every_recorded_image_pulls_from_a_copy(tmp_path: Path, name: str) -> None:
    record = fixture_record(name)
    root = copy_fixture(name, tmp_path / "root")
    before = tree_digest(root)
    with RealRegistry(root, workdir=tmp_path / "work") as reg:
        pull_all(reg.client, tagged_images(record))
        assert sorted(reg.client.catalog()) == sorted(
            {m["repo"] for m in record["manifests"]} | {b["repo"] for b in record["blobs"]}
        )
        for entry in record["manifests"]:
            status = manifest_status(reg.client, entry["repo"], entry["digest"])
            assert status == (404 if entry["deleted"] else 200), entry
        for orphan in record["orphan_blobs"]:
            assert reg.client.head_blob(orphan["repo"], orphan["digest"]) == 200
    # Serving and pulling wrote nothing to the store.
    assert tree_digest(root) == before


def test_copy_restores_the_empty_directories_git_drops(tmp_path: Path) -> None:
    record = fixture_record("mixed")
    root = copy_fixture("mixed", tmp_path / "root")
    assert record["empty_dirs"]
    for relative in record["empty_dirs"]:
        assert (root / relative).is_dir()


@needs_registry
def test_schema1_is_served_signed_without_schema1_enabled(tmp_path: Path) -> None:
    record = fixture_record("schema1")
    root = copy_fixture("schema1", tmp_path / "root")
    legacy = [
        t
        for t in record["tags"]
        if t["media_type"].startswith("application/vnd.docker.distribution.manifest.v1")
    ]
    assert legacy
    with RealRegistry(root, workdir=tmp_path / "work") as reg:
        for tag in legacy:
            body, dgst, content_type = reg.client.get_manifest(tag["repo"], tag["tag"])
            assert content_type == "application/vnd.docker.distribution.manifest.v1+prettyjws"
            assert "signatures" in json.loads(body)
            assert dgst == tag["digest"] != sha256_digest(body)
            # What the store keeps is the unsigned payload, named by that same digest.
            hexpart = dgst.split(":")[1]
            stored = root / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"
            assert "signatures" not in json.loads(stored.read_bytes())
            assert sha256_digest(stored.read_bytes()) == dgst


@needs_registry
def test_real_gc_dry_run_on_mixed(tmp_path: Path) -> None:
    record = fixture_record("mixed")
    root = copy_fixture("mixed", tmp_path / "root")
    config = write_config(tmp_path / "config.yml", root, readonly=True)
    before = tree_digest(root)
    result = run_real_gc(config, dry_run=True, delete_untagged=False)
    assert result.ok and not result.unparsed, result.stdout
    assert result.marked_blobs and result.summary is not None
    assert result.summary.marked == len(result.marked_blobs)
    for orphan in record["orphan_blobs"]:
        assert orphan["digest"] in result.eligible_blobs
    tags = {(t["repo"], t["digest"]) for t in record["tags"]}
    assert tags <= result.marked_manifests
    assert not result.eligible_manifests and not result.deleted_blob_paths
    assert tree_digest(root) == before


@needs_registry
def test_real_gc_delete_untagged_breaks_a_manifest_list(tmp_path: Path) -> None:
    # 2.8's -m unlinks the untagged children of a tagged manifest list (distribution#3004):
    # the harness must see the breakage, or it could not vouch for regstore.
    record = fixture_record("mixed")
    root = copy_fixture("mixed", tmp_path / "root")
    config = write_config(tmp_path / "config.yml", root, readonly=True)
    result = run_real_gc(config, dry_run=False, delete_untagged=True)
    lists = [t for t in record["tags"] if t["repo"] == "multi/docker"]
    children = next(m for m in record["manifests"] if m["digest"] == lists[0]["digest"])["children"]
    assert {("multi/docker", c) for c in children} <= result.eligible_manifests
    assert len(result.deleted_blob_paths) == len(result.eligible_blobs)
    assert result.deleted_manifest_paths
    with RealRegistry(root, workdir=tmp_path / "work") as reg:
        assert_manifest_gone(reg.client, "multi/docker", children[0])
        with pytest.raises(AssertionError, match=children[0]):
            pull_all(reg.client, [(t["repo"], t["tag"], t["digest"]) for t in lists])
        pull_all(reg.client, [t for t in tagged_images(record) if t[0] == "app"])
        for orphan in record["orphan_blobs"]:
            assert_blob_gone(reg.client, orphan["repo"], orphan["digest"])


def test_parse_gc_output_reads_repository_context_and_logrus() -> None:
    a, b, c = ("sha256:" + ch * 64 for ch in "abc")
    stdout = (
        f"repo/one\nrepo/one: marking manifest {a} \nrepo/one: marking blob {b}\n"
        f"manifest eligible for deletion: {c}\nother\n\n"
        f"2 blobs marked, 1 blobs and 1 manifests eligible for deletion\n"
        f"blob eligible for deletion: {c}\n"
    )
    stderr = (
        f'time="2024-01-01T00:00:00Z" level=info msg="Deleting blob: /docker/registry/v2/blobs/'
        f'sha256/cc/{c[7:]}" go.version=go1.19.8\n'
        '{"level":"info","msg":"deleting manifest: /docker/x","time":"2024"}\n'
    )
    result = parse_gc_output(stdout, stderr)
    assert result.repositories == ["repo/one", "other"]
    assert result.marked_manifests == {("repo/one", a)}
    assert result.marked_blobs == {a, b}
    assert result.eligible_manifests == {("repo/one", c)}
    assert result.eligible_blobs == {c}
    assert result.deleted_blob_paths == [f"/docker/registry/v2/blobs/sha256/cc/{c[7:]}"]
    assert result.deleted_manifest_paths == ["/docker/x"]
    assert result.ok and not result.unparsed

    failed = parse_gc_output(
        "app\n", "failed to garbage collect: failed to mark: boom", returncode=1
    )
    assert not failed.ok and failed.error == "failed to mark: boom"
    with pytest.raises(ValueError, match="summary says"):
        parse_gc_output(
            f"x: marking blob {a}\n\n"
            "5 blobs marked, 0 blobs and 0 manifests eligible for deletion\n",
            "",
        )


@needs_registry
def test_referrer_push_with_empty_config(tmp_path: Path) -> None:
    with RealRegistry(tmp_path / "root", workdir=tmp_path / "work") as reg:
        client = reg.client
        subject = push_image(client, "app", "v1", [b"y" * 256])
        empty = client.push_blob("app", b"{}")
        payload = client.push_blob("app", b"signature")
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_TYPE_OCI_MANIFEST,
                "artifactType": "application/vnd.example.sig",
                "config": {"mediaType": MEDIA_TYPE_OCI_EMPTY, "digest": empty, "size": 2},
                "layers": [{"mediaType": "application/octet-stream", "digest": payload, "size": 9}],
                "subject": {"mediaType": MEDIA_TYPE_SCHEMA2, "digest": subject, "size": 1},
            }
        ).encode()
        dgst = client.push_manifest("app", sha256_digest(body), body, MEDIA_TYPE_OCI_MANIFEST)
        # 2.8.2 keeps the subject field byte for byte but has no referrers API.
        assert pull_manifest_by_digest(client, "app", dgst) == body
        assert client.request("GET", f"/v2/app/referrers/{subject}").status == 404
