"""regstore gc against the real registry: its GC's decisions, and pulls after a real sweep.

Where the semantics agree (without -m) regstore must remove exactly what
``docker-registry garbage-collect`` removes. With -m regstore deliberately keeps more, and the
test computes that difference from the fixture's record, independently of regstore's code:
  * children of a live index, to any depth (distribution#3004, #3178);
  * OCI referrers whose subject is live;
  * regstore also removes the ``_layers`` links of blobs it sweeps or that are already gone,
    which 2.8 leaves behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.builders import age_store
from tests.support import copy_fixture, fixture_names, fixture_record, run_json
from tests.support.realgc import run_real_gc
from tests.support.registry import (RealRegistry, assert_blob_gone, assert_manifest_gone,
                                    pull_all, pull_manifest_by_digest, pull_tree, tagged_images,
                                    write_config)

pytestmark = pytest.mark.registry

V2 = Path("docker/registry/v2")




def kept_by_regstore_only(record: dict) -> tuple[set[tuple[str, str]], set[str]]:
    """Manifests that -m keeps although the registry's GC removes them, and their blobs:
    everything reachable from a tag through index children and live referrers, minus the
    tagged roots themselves. Computed from the fixture record alone."""
    manifests = {(m["repo"], m["digest"]): m for m in record["manifests"] if not m["deleted"]}
    live = {(t["repo"], t["digest"]) for t in record["tags"]}
    roots = set(live)
    changed = True
    while changed:
        changed = False
        for key, m in manifests.items():
            repo = key[0]
            reasons = [(repo, c) for c in m.get("children", [])] if key in live else []
            for child in reasons:
                if child not in live:
                    live.add(child)
                    changed = True
            if key not in live and m.get("subject") and (repo, m["subject"]) in live:
                live.add(key)
                changed = True
    extra = live - roots
    blobs = set()
    for key in live:
        m = manifests.get(key)
        blobs.add(key[1])
        if m:
            blobs.update(m.get("blobs", []))
    return extra, blobs


def assert_agrees_with_registry_gc(report: dict, real, record: dict,
                                   untagged: bool) -> set[tuple[str, str]]:
    """regstore's dry-run report against the registry GC's on the same store: equal where the
    semantics agree, and with -m different by exactly what regstore keeps on purpose (returned)."""
    ours_blobs = {i["digest"] for i in report["items"] if i["kind"] == "blob"}
    ours_manifests = {(i["repository"], i["digest"]) for i in report["items"]
                      if i["kind"] == "manifest"}
    if not untagged:
        assert ours_blobs == real.eligible_blobs
        assert ours_manifests == real.eligible_manifests == set()
        assert report["summary"]["blobs_marked"] == real.summary.marked
        return set()
    extra_manifests, extra_blobs = kept_by_regstore_only(record)
    assert ours_manifests == real.eligible_manifests - extra_manifests
    assert ours_blobs == real.eligible_blobs - extra_blobs
    return extra_manifests


def layer_links(root: Path) -> set[tuple[str, str]]:
    """Every (repo, digest) _layers link on disk, found by walking the tree directly."""
    found = set()
    repos = root / V2 / "repositories"
    for dirpath, dirnames, _ in os.walk(repos):
        if Path(dirpath).name == "_layers":
            repo = Path(dirpath).parent.relative_to(repos).as_posix()
            for alg in os.listdir(dirpath):
                for hex_ in os.listdir(Path(dirpath) / alg):
                    found.add((repo, f"{alg}:{hex_}"))
            dirnames.clear()
    return found


def blobs_on_disk(root: Path) -> set[str]:
    base = root / V2 / "blobs" / "sha256"
    return {f"sha256:{h}" for p in base.iterdir() for h in os.listdir(p)}


@pytest.mark.parametrize("name", fixture_names())
@pytest.mark.parametrize("untagged", [False, True], ids=["plain", "delete-untagged"])
def test_dry_run_agrees_with_the_registry_gc(tmp_path, name, untagged):
    root = copy_fixture(name, tmp_path / "store")
    age_store(root)
    config = write_config(tmp_path / "config.yml", root)
    real = run_real_gc(config, dry_run=True, delete_untagged=untagged)
    code, report, _ = run_json(["gc", "--dry-run", str(config)] + (["-m"] if untagged else []))
    assert code == 0, report["findings"]
    extra_manifests = assert_agrees_with_registry_gc(report, real, fixture_record(name), untagged)
    if untagged and name == "mixed":
        assert extra_manifests, "the fixture must exercise the documented differences"
    ours_blobs = {i["digest"] for i in report["items"] if i["kind"] == "blob"}
    ours_links = {(i["repository"], i["digest"]) for i in report["items"]
                  if i["kind"] == "layer-link"}
    on_disk = blobs_on_disk(root)
    assert ours_links == {(r, d) for r, d in layer_links(root)
                          if d in ours_blobs or d not in on_disk}


@pytest.mark.parametrize("name", ["mixed", "schema1"])
@pytest.mark.parametrize("untagged", [False, True], ids=["plain", "delete-untagged"])
def test_every_live_image_pulls_after_a_real_sweep(tmp_path, name, untagged):
    root = copy_fixture(name, tmp_path / "store")
    age_store(root)
    record = fixture_record(name)
    config = write_config(tmp_path / "config.yml", root, readonly=True,
                          extra=record.get("extra_config"))
    code, report, _ = run_json(["gc", str(config)] + (["-m"] if untagged else []))
    assert code == 0, report
    assert report["summary"]["failed"] == 0 and report["summary"]["skipped"] == 0
    removed = report["items"]
    if name == "mixed":
        assert any(i["kind"] == "blob" for i in removed)
    extra_manifests, _ = kept_by_regstore_only(record)
    with RealRegistry(root, readonly=True, workdir=tmp_path / "reg",
                      extra_config=record.get("extra_config")) as registry:
        client = registry.client
        pull_all(client, tagged_images(record))
        for repo, digest in extra_manifests:  # what -m of the registry would have broken
            body = pull_manifest_by_digest(client, repo, digest)
            pull_tree(client, repo, body, f"{repo}@{digest}")
        for item in removed:
            if item["kind"] == "manifest":
                assert_manifest_gone(client, item["repository"], item["digest"])
            elif item["kind"] == "layer-link":
                assert_blob_gone(client, item["repository"], item["digest"])
    for item in removed:
        assert not (root / V2 / item["path"]).exists(), item
    # A second run finds nothing left to do, and the registry's own GC agrees.
    code, again, _ = run_json(["gc", "--dry-run", str(config)] + (["-m"] if untagged else []))
    assert code == 0 and again["items"] == []
    assert run_real_gc(config, dry_run=True, delete_untagged=False).eligible_blobs == set()


def test_a_real_sweep_refuses_a_registry_that_is_not_read_only(tmp_path):
    root = copy_fixture("small", tmp_path / "store")
    config = write_config(tmp_path / "config.yml", root, readonly=False)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    code, report, _ = run_json(["gc", str(config)])
    assert code == report["exit_code"] == 4
    assert "read-only" in report["error"] and "--force" in report["error"]
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_repository_without_tags_directory(tmp_path):
    """2.8 aborts -m when a repository has revisions but no _manifests/tags; regstore treats
    its revisions as untagged and goes on."""
    root = copy_fixture("mixed", tmp_path / "store")
    age_store(root)
    import shutil
    shutil.rmtree(root / V2 / "repositories/tools/_manifests/tags")
    config = write_config(tmp_path / "config.yml", root)
    real = run_real_gc(config, dry_run=True, delete_untagged=True, check=False)
    assert not real.ok
    code, report, _ = run_json(["gc", "--dry-run", "-m", str(config)])
    assert code == 0
    revisions = {f"sha256:{h}" for h in
                 os.listdir(root / V2 / "repositories/tools/_manifests/revisions/sha256")}
    assert {i["digest"] for i in report["items"]
            if i["kind"] == "manifest" and i["repository"] == "tools"} == revisions
