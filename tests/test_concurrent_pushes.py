"""gc with a grace period while the real registry (not read-only) takes pushes.

Pushes reuse old orphan layers on purpose: the registry does not rewrite a blob it already
has, so only the new link says the layer is in use again. Every push that completed must pull
afterwards, with all its layers.
"""

from __future__ import annotations

import io
import json
import random
import threading
import time

import pytest

from regstore import layout
from regstore.cli import main
from tests.builders import age_store
from tests.support import copy_fixture, fixture_record
from tests.support.registry import (MEDIA_TYPE_SCHEMA2, MEDIA_TYPE_SCHEMA2_CONFIG,
                                    MEDIA_TYPE_SCHEMA2_LAYER, RealRegistry, pull_all,
                                    tagged_images)

pytestmark = pytest.mark.registry

PUSH_SECONDS = 12


def push(client, repo: str, tag: str, layers: list[bytes], n: int) -> str:
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": n}).encode()
    descs = []
    for data in layers:
        descs.append({"mediaType": MEDIA_TYPE_SCHEMA2_LAYER, "size": len(data),
                      "digest": client.push_blob(repo, data)})
    manifest = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_SCHEMA2,
                "config": {"mediaType": MEDIA_TYPE_SCHEMA2_CONFIG, "size": len(config),
                           "digest": client.push_blob(repo, config)},
                "layers": descs}
    return client.push_manifest(repo, tag, json.dumps(manifest).encode(), MEDIA_TYPE_SCHEMA2)


def test_pushes_during_repeated_gc_all_pull_afterwards(tmp_path):
    record = fixture_record("mixed")
    root = copy_fixture("mixed", tmp_path / "store")
    age_store(root)
    v2 = root / layout.V2_PREFIX
    # Old orphans (the fixture's orphan blob and layers only untagged manifests use) are what
    # a concurrent push can race on.
    orphan_bytes = [(v2 / layout.blob_data(b["digest"])).read_bytes()
                    for b in record["orphan_blobs"]]
    for m in record["manifests"]:
        if m["repo"] == "tools" and not m["tags_now"]:
            orphan_bytes += [(v2 / layout.blob_data(d)).read_bytes() for d in m["blobs"]
                             if (v2 / layout.blob_data(d)).exists()]
    assert orphan_bytes
    pushed: list[tuple[str, str, str]] = []
    errors: list[BaseException] = []
    gc_reports = []
    with RealRegistry(root, readonly=False, workdir=tmp_path / "reg",
                      extra_config=record.get("extra_config")) as registry:
        config = registry.config_path
        stop = time.monotonic() + PUSH_SECONDS
        rng = random.Random(7)

        def pusher() -> None:
            n = 0
            try:
                while time.monotonic() < stop:
                    repo = rng.choice(["app", "tools", "fresh/one", "gone"])
                    layers = [rng.choice(orphan_bytes), rng.randbytes(300 + n)]
                    tag = f"c{n}"
                    pushed.append((repo, tag, push(registry.client, repo, tag, layers, n)))
                    n += 1
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)

        thread = threading.Thread(target=pusher)
        thread.start()
        while thread.is_alive():
            out, err = io.StringIO(), io.StringIO()
            code = main(["gc", "-m", "--json", "--min-age", "3s", str(config)], out=out, err=err)
            assert code == 0, err.getvalue()
            gc_reports.append(json.loads(out.getvalue()))
        thread.join()
        assert not errors, errors
        assert len(pushed) > 20 and len(gc_reports) >= 3
        assert sum(r["summary"]["removed"] for r in gc_reports) > 0, "gc must have swept"
        time.sleep(3.5)  # past the grace period: the last pushes are no longer protected
        out, err = io.StringIO(), io.StringIO()
        assert main(["gc", "-m", "--json", "--min-age", "3s", str(config)], out=out,
                    err=err) == 0, err.getvalue()
        pull_all(registry.client, pushed)
        pull_all(registry.client, tagged_images(record))
