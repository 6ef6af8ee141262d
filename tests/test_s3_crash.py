"""Kill a real sweep of an S3 store before each of its deletion requests.

On S3 nothing is held: items are deleted directly, kind after kind (untagged manifests, layer
links, blobs, uploads). After a kill before any ``DeleteObjects`` request, every image that was
live still pulls from the bucket through the real registry, verify finds no error, and the next
run finishes the job, leaving the bucket exactly as an uninterrupted run does.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import regstore.lock as lock
from tests.support import run_json, s3crash
from tests.support.ceph import Ceph
from tests.support.registry import pull_all, pull_manifest_by_digest, pull_tree, tagged_images
from tests.test_gc_realregistry import kept_by_regstore_only
from tests.test_s3_ceph import mixed_s3  # noqa: F401  (the session fixture)

pytestmark = [pytest.mark.ceph, pytest.mark.registry]

ROOT = Path(__file__).resolve().parent.parent
GC = ["gc", "-q", "-m", "--min-age", "1s", "--uploads-older-than", "1s",
      "--delete-empty-repos"]


def crash_run(config: Path, kill_at: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tests.support.s3crash", str(kill_at), "--",
                           *GC, str(config)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_sigkill_before_any_deletion_request_loses_nothing(ceph: Ceph, mixed_s3, tmp_path,
                                                          monkeypatch):
    monkeypatch.setattr(lock, "STALE_AFTER", s3crash.STALE_AFTER)
    record = mixed_s3.record
    extra_config = record.get("extra_config")
    reference = ceph.copy_store(mixed_s3.bucket)
    reference_config = ceph.config(tmp_path / "reference.yml", reference, readonly=True,
                                   extra=extra_config)
    time.sleep(1.2)  # the copies must outgrow the one-second grace period
    full = crash_run(reference_config, 0)
    assert full.returncode == 0, full.stderr
    requests = int(re.search(r"deletions: (\d+)", full.stderr).group(1))
    assert requests >= 4, "manifests, links, blobs and uploads go in requests of their own"
    final = ceph.keys(reference)
    extra, _ = kept_by_regstore_only(record)
    for k in range(1, requests + 1):
        bucket = ceph.copy_store(mixed_s3.bucket)
        config = ceph.config(tmp_path / f"kill-{k}.yml", bucket, readonly=True,
                             extra=extra_config)
        time.sleep(1.2)
        killed = crash_run(config, k)
        assert killed.returncode == -signal.SIGKILL, (k, killed.stderr)
        assert ceph.keys(bucket, "store/.regstore/"), "a killed run leaves its lock"
        time.sleep(s3crash.STALE_AFTER + 1.5)  # ... which goes stale (times in whole seconds)
        code, report, _ = run_json(["verify", "--no-state", str(config)])
        assert report["summary"]["errors"] == 0, (k, report["findings"])
        with ceph.registry(bucket, workdir=tmp_path / f"reg-{k}", readonly=True,
                           extra=extra_config) as registry:
            pull_all(registry.client, tagged_images(record))
            for repo, digest in extra:
                body = pull_manifest_by_digest(registry.client, repo, digest)
                pull_tree(registry.client, repo, body, f"{repo}@{digest}")
        again = crash_run(config, 0)
        assert again.returncode == 0, (k, again.stderr)
        assert "took over a stale lock" in again.stderr
        now = ceph.keys(bucket)
        assert sorted(set(now) ^ set(final)) == [] and now == final, \
            f"killed before deletion request {k}: the next run did not finish"
