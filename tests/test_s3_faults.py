"""Faults on a real S3 store: errors, throttling and broken listings mid-mark, and the lock.

Faults are injected into regstore's own boto3 client with botocore's event hooks, on the real
Ceph: ``before-send`` answers a request with an error response instead of sending it (botocore
then retries it as it would a real one), ``after-call`` changes what a listing returned. Each
fault that leaves regstore unable to know what is live must end in exit code 6 with the prefix
named, and the bucket byte for byte as it was.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest
from botocore.awsrequest import AWSResponse
from botocore.retries.standard import ExponentialBackoff

import regstore.store.s3 as s3_module
from regstore.errors import Locked
from regstore.lock import S3StoreLock
from regstore.store.base import StoreError
from regstore.store.s3 import S3Store
from tests.support import run_json
from tests.support.ceph import Ceph

pytestmark = [pytest.mark.ceph, pytest.mark.registry]

V2 = "store/docker/registry/v2/"


@pytest.fixture(autouse=True)
def through_boto3(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hooks below are botocore's: every request goes through boto3 here."""
    monkeypatch.setenv("REGSTORE_S3_CLIENT", "boto3")




@pytest.fixture(scope="module")
def store(ceph: Ceph, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The mixed scenario in a bucket, pushed by the real registry, and an orphan blob's
    digest (what a sweep would remove)."""
    bucket = ceph.new_bucket("faults")
    work = tmp_path_factory.mktemp("faults")
    record = ceph.push_scenario("mixed", bucket, "/store", workdir=work / "registry")
    orphan = record["orphan_blobs"][0]["digest"]
    return SimpleNamespace(bucket=bucket, record=record, orphan=orphan, work=work)


def config_for(ceph: Ceph, bucket: str, path: Path) -> Path:
    return ceph.config(path, bucket, readonly=True)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs: Any) -> Any:
        yield self.body


def error_response(status: int, code: str) -> AWSResponse:
    body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>injected by the test</Message></Error>").encode()
    return AWSResponse("http://injected", status, {"Content-Type": "application/xml"}, _Raw(body))


def inject(monkeypatch: pytest.MonkeyPatch, before_send: Callable[..., Any] | None = None,
           after_list: Callable[..., None] | None = None, retries: int = 4) -> list[str]:
    """Make every client regstore connects with carry the hooks; returns the log of injected
    faults."""
    real_connect = s3_module.connect
    log: list[str] = []

    def connect(settings: Any, jobs: int = 8, retries_: int | None = None) -> Any:
        client = real_connect(settings, jobs, retries)
        if before_send is not None:
            client.meta.events.register("before-send.s3", lambda request, **kw:
                                        before_send(request, log))
        if after_list is not None:
            client.meta.events.register("after-call.s3.ListObjectsV2",
                                        lambda parsed, **kw: after_list(parsed, log))
        return client

    monkeypatch.setattr(s3_module, "connect", connect)
    return log


def listing_prefix(request: Any) -> str | None:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.url).query)
    if request.method == "GET" and query.get("list-type") == ["2"]:
        return query.get("prefix", [""])[0]
    return None


def test_a_failing_blob_listing_stops_the_sweep_before_any_deletion(ceph, store, tmp_path,
                                                                      monkeypatch):
    bucket = ceph.copy_store(store.bucket)
    before = ceph.keys(bucket)
    broken = f"{V2}blobs/sha256/"  # the flat listing of the blob store (a small one)

    def fail(request: Any, log: list[str]) -> AWSResponse | None:
        if listing_prefix(request) == broken and "delimiter=" not in request.url:
            log.append(broken)
            return error_response(500, "InternalError")
        return None

    monkeypatch.setattr(s3_module, "OUTER_BACKOFF", 0.01)
    log = inject(monkeypatch, fail)
    time.sleep(1.1)
    code, report, err = run_json(["gc", "--min-age", "1s", str(config_for(ceph, bucket,
                                                                      tmp_path / "c.yml"))])
    assert code == 6, (report, err)
    assert len(log) == 4 * s3_module.OUTER_ATTEMPTS, "retried before giving up"
    unreadable = [f for f in report["findings"] if f["kind"] == "unreadable"]
    assert unreadable and broken.rstrip("/").removeprefix(V2) in unreadable[0]["path"]
    assert broken in unreadable[0]["message"] and "InternalError" in unreadable[0]["message"]
    assert report["complete"] is False
    assert ceph.keys(bucket) == before


def test_throttling_is_retried_and_changes_nothing(ceph, store, tmp_path, monkeypatch):
    config = config_for(ceph, store.bucket, tmp_path / "c.yml")
    code, calm, _ = run_json(["gc", "--dry-run", "-m", "--min-age", "0", str(config)])
    assert code == 0
    # botocore's backoff for throttling starts at up to 1 s; a hundredth keeps the test short.
    monkeypatch.setitem(ExponentialBackoff._DEFAULT_BACKOFF_CONFIG, "throttling_base_scale",
                        0.01)
    monkeypatch.setattr(s3_module, "OUTER_BACKOFF", 0.01)
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def throttle(request: Any, log: list[str]) -> AWSResponse | None:
        # Every request is refused with 503 SlowDown three times, then let through: more
        # than botocore's retry quota allows for so many, so regstore's own retries count.
        key = f"{request.method} {request.url}"
        with lock:
            seen[key] = seen.get(key, 0) + 1
            if seen[key] <= 3:
                log.append(key)
                return error_response(503, "SlowDown")
        return None

    log = inject(monkeypatch, throttle, retries=3)
    code, throttled, _ = run_json(["gc", "--dry-run", "-m", "--min-age", "0", str(config)])
    assert code == 0, throttled["findings"]
    assert len(log) > 150  # three refusals for each of the run's requests
    assert throttled["items"] == calm["items"] and throttled["summary"] == calm["summary"]


def test_throttling_that_never_ends_mid_mark_sweeps_nothing(ceph, store, tmp_path,
                                                           monkeypatch):
    bucket = ceph.copy_store(store.bucket)
    before = ceph.keys(bucket)

    def throttle_manifests(request: Any, log: list[str]) -> AWSResponse | None:
        # The manifests regstore reads to mark: one of them is always throttled.
        if request.method == "GET" and "/blobs/sha256/" in request.url and \
                request.headers.get("Range") and store.record["tags"][0]["digest"][7:] in \
                request.url:
            log.append(request.url)
            return error_response(503, "SlowDown")
        return None

    monkeypatch.setitem(ExponentialBackoff._DEFAULT_BACKOFF_CONFIG, "throttling_base_scale",
                        0.01)
    monkeypatch.setattr(s3_module, "OUTER_BACKOFF", 0.01)
    log = inject(monkeypatch, throttle_manifests)
    time.sleep(1.1)
    code, report, err = run_json(["gc", "--min-age", "1s", str(config_for(ceph, bucket,
                                                                      tmp_path / "c.yml"))])
    assert code == 6, (report, err)
    assert log
    assert any(f["kind"] == "unreadable-manifest" and "SlowDown" in f["message"]
               for f in report["findings"])
    assert ceph.keys(bucket) == before


def test_a_truncated_listing_is_an_incomplete_mark(ceph, store, tmp_path, monkeypatch):
    bucket = ceph.copy_store(store.bucket)
    before = ceph.keys(bucket)

    def truncate(parsed: dict[str, Any], log: list[str]) -> None:
        if parsed.get("Prefix", "").endswith("/_manifests/revisions/"):
            parsed["IsTruncated"] = True
            parsed.pop("NextContinuationToken", None)
            log.append(parsed["Prefix"])

    log = inject(monkeypatch, after_list=truncate)
    time.sleep(1.1)
    code, report, err = run_json(["gc", "-m", "--min-age", "1s",
                             str(config_for(ceph, bucket, tmp_path / "c.yml"))])
    assert code == 6, (report, err)
    assert log
    assert any("truncated without a usable continuation token" in f["message"]
               for f in report["findings"] if f["kind"] == "unreadable")
    assert ceph.keys(bucket) == before


def test_a_listing_that_strays_outside_its_prefix_removes_nothing(ceph, store, tmp_path):
    bucket = ceph.copy_store(store.bucket)
    client = ceph.client()
    client.put_object(Bucket=bucket, Key="store/elsewhere/keep", Body=b"not the registry's")
    before = ceph.keys(bucket)
    s3 = S3Store(client, bucket, "/store", writable=True)
    key = f"blobs/sha256/{store.orphan[7:9]}/{store.orphan[7:]}"

    def stray(parsed: dict[str, Any], **kw: Any) -> None:
        parsed.setdefault("Contents", []).append(
            {"Key": "store/elsewhere/keep", "Size": 1, "LastModified": time.gmtime(0)})

    client.meta.events.register("after-call.s3.ListObjectsV2", stray)
    failed = s3.remove_trees([key])
    assert "outside" in failed[key]
    assert ceph.keys(bucket) == before
    for bad in ("../elsewhere", "blobs/../../elsewhere", "/blobs", "blobs//x", ""):
        assert "not a plain relative path" in s3.remove_trees([bad])[bad]
        with pytest.raises(StoreError):
            s3.remove_tree(bad)
    assert ceph.keys(bucket) == before


# --- the lock -----------------------------------------------------------------------------


def test_of_runs_racing_for_the_s3_lock_exactly_one_wins(ceph, store):
    stores = [S3Store(ceph.client(), store.bucket, "/store", writable=True) for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    outcome: list[str] = []

    def race(s: S3Store) -> None:
        lock = S3StoreLock(s, "regstore gc", heartbeat=60)
        barrier.wait()
        try:
            lock.acquire()
        except Locked:
            outcome.append("locked")
            return
        outcome.append("won")
        time.sleep(1)
        lock.release()

    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcome) == ["locked"] * 7 + ["won"]
    assert ceph.client().list_objects_v2(Bucket=store.bucket,
                                         Prefix="store/.regstore/").get("KeyCount") == 0


def test_a_dry_run_refuses_while_a_sweep_holds_the_s3_lock(ceph, store, tmp_path):
    s3 = S3Store(ceph.client(), store.bucket, "/store", writable=True)
    with S3StoreLock(s3, "regstore gc -m", heartbeat=60):
        code, report, _ = run_json(["gc", "--dry-run", str(config_for(ceph, store.bucket,
                                                                 tmp_path / "c.yml"))])
        assert code == 5
        assert "'regstore gc -m'" in report["error"] and "renewed" in report["error"]
        with pytest.raises(Locked):
            S3StoreLock(S3Store(ceph.client(), store.bucket, "/store"), "regstore gc").acquire()
    config = config_for(ceph, store.bucket, tmp_path / "c.yml")
    code, _, _ = run_json(["gc", "--dry-run", str(config)])
    assert code == 0


def test_a_renewed_lock_stays_and_a_stale_one_is_taken_over(ceph, store):
    holder_store = S3Store(ceph.client(), store.bucket, "/store", writable=True)
    holder = S3StoreLock(holder_store, "regstore gc", heartbeat=0.2, stale_after=1.5)
    holder.acquire()
    try:
        time.sleep(2)  # beyond stale_after, but renewed all along
        with pytest.raises(Locked):
            S3StoreLock(S3Store(ceph.client(), store.bucket, "/store"), "regstore gc",
                        stale_after=1.5).acquire()
        # The holder dies without releasing: its renewals stop.
        holder._stop.set()
        assert holder._thread is not None
        holder._thread.join()
        time.sleep(2)
        taker = S3StoreLock(S3Store(ceph.client(), store.bucket, "/store", writable=True),
                            "regstore gc -m", heartbeat=60, stale_after=1.5)
        taker.acquire()
        assert taker.stale and "regstore gc" in taker.stale
        # The old holder, should it wake up, removes nothing more.
        failed = holder_store.remove_trees(["blobs/sha256/00/" + "0" * 64])
        assert "the store's lock was lost" in next(iter(failed.values()))
        taker.release()
    finally:
        holder._thread = None
        holder.release()
    assert ceph.client().list_objects_v2(Bucket=store.bucket,
                                         Prefix="store/.regstore/").get("KeyCount") == 0

