"""The benchmark generator writes the layout the registry writes: the real registry serves every
tag of a generated store, and its garbage collector finds the same garbage as regstore and as
the generator's own record.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from bench.generate import RECORD_NAME, generate
from tests.support import run_json
from tests.support.realgc import run_real_gc
from tests.support.registry import RealRegistry, pull_all, write_config

pytestmark = pytest.mark.registry

V2 = Path("docker/registry/v2")
HEX = r"[0-9a-f]{64}"
LINK = rf"(?P<hex>{HEX})/link"
NAME = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
# Every file the registry writes, as fixtures/mixed shows it.
FILE_PATTERNS = [
    re.compile(rf"blobs/sha256/(?P<prefix>[0-9a-f]{{2}})/(?P<hex>{HEX})/data"),
    re.compile(rf"repositories/{NAME}/_layers/sha256/{LINK}"),
    re.compile(rf"repositories/{NAME}/_manifests/revisions/sha256/{LINK}"),
    re.compile(rf"repositories/{NAME}/_manifests/tags/[\w][\w.-]*/current/link"),
    re.compile(rf"repositories/{NAME}/_manifests/tags/[\w][\w.-]*/index/sha256/{LINK}"),
    re.compile(rf"repositories/{NAME}/_uploads/[0-9a-f-]{{36}}/"
               r"(?:data|startedat|hashstates/sha256/\d+)"),
]
FEATURES = {"nested-name", "deep-name", "repo-below-repo", "overwritten-tag", "untagged",
            "docker-list", "oci-index", "nested-index", "bare-index", "oci-bare-image",
            "referrer", "referrer-of-untagged", "referrer-of-deleted", "cosign-signature",
            "deleted", "copied-between-repos", "orphan-linked"}




def files_of(root: Path) -> dict[str, bytes]:
    found = {}
    for dirpath, _, filenames in os.walk(root / V2):
        for name in filenames:
            path = Path(dirpath, name)
            found[path.relative_to(root / V2).as_posix()] = path.read_bytes()
    return found


def test_the_layout_is_the_registrys(tmp_path):
    root = tmp_path / "store"
    record = generate(root, 400, seed=3, jobs=2)
    assert json.loads((root / RECORD_NAME).read_text()) == record
    assert FEATURES <= set(record["features"])
    files = files_of(root)
    assert len(files) == record["counts"]["files"]
    dirs = sum(len(d) for _, d, _ in os.walk(root / "docker")) + 1
    assert dirs == record["counts"]["directories"]
    blobs = 0
    for path, content in files.items():
        match = next((m for p in FILE_PATTERNS if (m := p.fullmatch(path))), None)
        assert match, f"the registry writes no file like {path}"
        if path.startswith("blobs/"):
            blobs += 1
            assert hashlib.sha256(content).hexdigest() == match["hex"]
            assert match["hex"].startswith(match["prefix"])
        elif path.endswith("/link"):
            # A link holds the digest and nothing else: no newline, as the registry writes it.
            assert re.fullmatch(rf"sha256:{HEX}", content.decode()), path
            if "hex" in match.groupdict():
                assert content.decode() == f"sha256:{match['hex']}", path
    assert blobs == record["counts"]["blobs"] == 400
    assert sum(len(c) for p, c in files.items() if p.startswith("blobs/")) \
        == record["counts"]["blob_bytes"]


def test_the_same_seed_gives_the_same_store(tmp_path):
    first = generate(tmp_path / "a", 250, seed=11, jobs=2)
    second = generate(tmp_path / "b", 250, seed=11, jobs=1)
    other = generate(tmp_path / "c", 250, seed=12, jobs=2)
    first.pop("seconds"), second.pop("seconds")
    assert first == second
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")
    stamps = {p: os.stat(tmp_path / "a" / V2 / p).st_mtime for p in files_of(tmp_path / "a")}
    assert stamps == {p: os.stat(tmp_path / "b" / V2 / p).st_mtime for p in stamps}
    assert other["tagged"] != first["tagged"]


def test_the_registry_serves_and_collects_a_generated_store(tmp_path):
    root = tmp_path / "store"
    record = generate(root, 600, seed=5, jobs=2)
    with RealRegistry(root, readonly=True, workdir=tmp_path / "reg") as registry:
        pull_all(registry.client, [(repo, tag, digest) for repo, tag, digest in record["tagged"]])
    config = write_config(tmp_path / "config.yml", root, readonly=True)
    real = run_real_gc(config, dry_run=True, delete_untagged=False)
    code, report, _ = run_json(["gc", "--dry-run", str(config)])
    assert code == 0, report
    ours = {i["digest"] for i in report["items"] if i["kind"] == "blob"}
    assert ours == real.eligible_blobs
    assert len(ours) == record["expected"]["unreferenced_blobs"]
    assert sum(i["size"] for i in report["items"] if i["kind"] == "blob") \
        == record["expected"]["unreferenced_bytes"]
    assert report["summary"]["blobs_total"] == record["counts"]["blobs"]
    # The benchmark times the registry's -m too: it must run to its end on such a store.
    assert run_real_gc(config, dry_run=True, delete_untagged=True).ok
