"""Kill a real sweep with SIGKILL at 50 points spread over all of its work.

After each kill: every image that was live still pulls through the real registry with the
right digests, verify finds no error, and the next run finishes the job, leaving the store
exactly as an uninterrupted run does.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import age_store
from tests.support import copy_fixture, fixture_record
from tests.support.registry import (RealRegistry, pull_all, pull_manifest_by_digest,
                                    pull_tree, tagged_images)
from tests.test_gc_realregistry import kept_by_regstore_only

pytestmark = pytest.mark.registry

ROOT = Path(__file__).resolve().parent.parent
GC = ["gc", "-q", "-m", "--force", "--delete-empty-repos", "--min-age", "0",
      "--uploads-older-than", "1h"]
KILL_POINTS = 50


def crash_run(root: Path, kill_at: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tests.support.crash", str(kill_at), "--",
                           *GC, "--root", str(root)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def store_hash(root: Path) -> str:
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".regstore"]
        rel = os.path.relpath(dirpath, root)
        entries.append((f"D {rel}", b""))
        entries += [(f"F {rel}/{n}", Path(dirpath, n).read_bytes()) for n in filenames]
    h = hashlib.sha256()
    for name, data in sorted(entries):
        h.update(name.encode() + b"\0" + data)
    return h.hexdigest()


def fresh_store(tmp_path: Path, name: str) -> Path:
    root = copy_fixture("mixed", tmp_path / name)
    age_store(root)
    return root


def verify_errors(root: Path) -> list[str]:
    """Errors regstore verify reports (none when verify is not part of this build yet)."""
    proc = subprocess.run([sys.executable, "-m", "regstore", "verify", "--json", "--root",
                           str(root)], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode == 2 and "invalid choice" in proc.stderr:
        return []
    import json
    report = json.loads(proc.stdout)
    return [f["kind"] + ": " + f["message"] for f in report.get("findings", [])
            if f["severity"] == "error"]


def test_sigkill_at_any_point_loses_nothing_and_the_next_run_finishes(tmp_path):
    record = fixture_record("mixed")
    reference = fresh_store(tmp_path, "reference")
    full = crash_run(reference, 0)
    assert full.returncode == 0, full.stderr
    changes = int(re.search(r"changes: (\d+)", full.stderr).group(1))
    assert changes >= KILL_POINTS, "the sweep must have enough steps to kill it at"
    final = store_hash(reference)
    points = sorted({1 + (i * (changes - 1)) // (KILL_POINTS - 1) for i in range(KILL_POINTS)})
    assert len(points) == KILL_POINTS
    extra, _ = kept_by_regstore_only(record)
    for k in points:
        root = fresh_store(tmp_path, f"kill-{k}")
        killed = crash_run(root, k)
        assert killed.returncode == -signal.SIGKILL, (k, killed.stderr)
        assert verify_errors(root) == [], f"killed at change {k}"
        with RealRegistry(root, readonly=True, workdir=tmp_path / f"reg-{k}",
                          extra_config=record.get("extra_config")) as registry:
            pull_all(registry.client, tagged_images(record))
            for repo, digest in extra:
                body = pull_manifest_by_digest(registry.client, repo, digest)
                pull_tree(registry.client, repo, body, f"{repo}@{digest}")
        again = crash_run(root, 0)
        assert again.returncode == 0, (k, again.stderr)
        assert store_hash(root) == final, f"killed at change {k}: the next run did not finish"
