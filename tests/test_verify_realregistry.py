"""regstore verify against the real registry (Debian's docker-registry 2.8.2).

* On every clean fixture, the orphan blobs verify reports as hints are exactly the blobs the
  registry's own ``garbage-collect --dry-run`` would delete.
* After ``verify --quarantine`` the registry answers "blob unknown" (404) for the corrupt layer,
  and re-pushing the image through the registry's API heals the store: verify finds no error.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from regstore import layout
from regstore.cli import main
from regstore.holding import runs_in
from tests.support import copy_fixture, fixture_names, fixture_record
from tests.support.realgc import run_real_gc
from tests.support.registry import (RealRegistry, assert_blob_gone, pull_all, sha256_digest,
                                    tagged_images, write_config)

pytestmark = pytest.mark.registry


def verify(root: Path, *args: str) -> tuple[int, dict]:
    out = io.StringIO()
    code = main(["verify", "--json", "--root", str(root), *args], out=out, err=io.StringIO())
    return code, json.loads(out.getvalue())


@pytest.mark.parametrize("name", fixture_names())
def test_orphan_hints_are_what_the_registry_gc_would_delete(tmp_path: Path, name: str) -> None:
    root = copy_fixture(name, tmp_path / "store")
    config = write_config(tmp_path / "config.yml", root, readonly=True,
                          extra=fixture_record(name).get("extra_config"))
    code, doc = verify(root, "--no-state")
    assert code == 0
    assert [f for f in doc["findings"] if f["severity"] != "hint"] == []
    real = run_real_gc(config, dry_run=True, delete_untagged=False)
    assert real.ok, real.stderr
    orphans = {f["digest"] for f in doc["findings"] if f["kind"] == "orphan-blob"}
    assert orphans == real.eligible_blobs
    assert doc["summary"]["orphan_blobs"] == len(real.eligible_blobs)


def test_quarantine_makes_the_registry_say_blob_unknown_and_a_re_push_heals(
        tmp_path: Path) -> None:
    record = fixture_record("mixed")
    root = copy_fixture("mixed", tmp_path / "store")
    v2 = root / layout.V2_PREFIX
    base1 = next(b["digest"] for b in record["blobs"] if b["label"] == "base-1")
    data_path = v2 / layout.blob_data(base1)
    good = data_path.read_bytes()
    corrupt = bytearray(good)
    corrupt[100] ^= 0xFF
    data_path.write_bytes(bytes(corrupt))

    # Before: the registry serves the bad bytes under the layer's digest.
    with RealRegistry(root) as registry:
        assert sha256_digest(registry.client.get_blob("app", base1)) != base1

    quarantine = tmp_path / "quarantine"
    code, doc = verify(root, "--quarantine", str(quarantine), "--force")
    assert code == 1
    assert [(f["kind"], f["digest"]) for f in doc["findings"] if f["severity"] == "error"] == \
        [("blob-corrupt", base1)]
    [moved] = doc["quarantined"]
    assert (moved["digest"], moved["key"]) == (base1, layout.blob_dir(base1))
    assert not (v2 / layout.blob_dir(base1)).exists()
    [run] = runs_in(quarantine)
    assert moved["item"] == str(run / "items" / "0")
    assert (run / "items" / "0" / "data").read_bytes() == bytes(corrupt)

    code, doc = verify(root)
    assert code == 1
    errors = [(f["kind"], f["digest"]) for f in doc["findings"] if f["severity"] == "error"]
    assert errors == [("missing-blob", base1)]

    app_v2 = next(t for t in record["tags"] if (t["repo"], t["tag"]) == ("app", "v2"))
    manifest = (v2 / layout.blob_data(app_v2["digest"])).read_bytes()
    with RealRegistry(root) as registry:
        client = registry.client
        for repo in ("app", "team/app/api", "tools", "foreign"):
            assert_blob_gone(client, repo, base1)  # "blob unknown", in every repository
        response = client.request("GET", f"/v2/app/blobs/{base1}")
        assert response.status == 404 and b"BLOB_UNKNOWN" in response.body
        # The operator re-pushes the image: its layers, then its manifest.
        assert client.push_blob("app", good) == base1
        assert client.push_manifest("app", "v2", manifest, app_v2["media_type"]) == \
            app_v2["digest"]
        # Blobs are shared: every image using the layer pulls again, byte for byte.
        pull_all(client, tagged_images(record))

    code, doc = verify(root)
    assert code == 0
    assert [f for f in doc["findings"] if f["severity"] != "hint"] == []
    assert data_path.read_bytes() == good
