"""Faults on a real S3 store: errors, throttling, broken connections and listings mid-mark,
and the lock.

Faults are injected by a relay on 127.0.0.1 between regstore and the real Ceph
(tests/support/s3relay.py): regstore's config points at the relay, which answers chosen
requests with an error, resets their connection, cuts a body off or changes a listing, and
passes everything else on. Each test runs with both clients regstore may use: the light client
(``light``) and boto3 (``REGSTORE_S3_CLIENT=boto3``). Each fault that leaves regstore unable
to know what is live must end in exit code 6 with the prefix named, and the bucket byte for
byte as it was.
"""

from __future__ import annotations

import re
import ssl
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator

import pytest
from botocore.retries.standard import ExponentialBackoff

import regstore.store.s3 as s3_module
import regstore.store.s3wire as s3wire
from regstore.config import load_config, s3_settings
from regstore.errors import Locked
from regstore.lock import S3StoreLock
from regstore.store.base import StoreError
from regstore.store.s3 import S3Settings, S3Store
from tests.support import run_json
from tests.support.ceph import Ceph
from tests.support.registry import write_config
from tests.support.s3relay import Answer, CutBody, Fault, FaultRelay, Request, Reset, Rewrite

pytestmark = [pytest.mark.ceph, pytest.mark.registry]

V2 = "store/docker/registry/v2/"


@pytest.fixture(scope="module")
def store(ceph: Ceph, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The mixed scenario in a bucket, pushed by the real registry, and an orphan blob's
    digest (what a sweep would remove)."""
    bucket = ceph.new_bucket("faults")
    work = tmp_path_factory.mktemp("faults")
    record = ceph.push_scenario("mixed", bucket, "/store", workdir=work / "registry")
    orphan = record["orphan_blobs"][0]["digest"]
    return SimpleNamespace(bucket=bucket, record=record, orphan=orphan, work=work)


@pytest.fixture(params=["light", "boto3"])
def client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which client regstore makes its requests with; retries back off a hundredth of the
    usual (botocore's throttling backoff starts at up to 1 s)."""
    if request.param == "boto3":
        monkeypatch.setenv("REGSTORE_S3_CLIENT", "boto3")
    else:
        monkeypatch.delenv("REGSTORE_S3_CLIENT", raising=False)
    monkeypatch.setitem(ExponentialBackoff._DEFAULT_BACKOFF_CONFIG, "throttling_base_scale",
                        0.01)
    monkeypatch.setattr(s3wire, "BACKOFF", 0.01)
    monkeypatch.setattr(s3_module, "OUTER_BACKOFF", 0.01)
    return str(request.param)


@contextmanager
def relayed(ceph: Ceph, bucket: str, path: Path,
            decide: Callable[[Request], Fault | None] | None = None,
            **options: Any) -> Iterator[tuple[Path, FaultRelay]]:
    """A read-only registry config for ``bucket`` whose endpoint is a fault relay."""
    relay = FaultRelay(ceph.endpoint, decide, **options)
    with relay as endpoint:
        relay_config = write_config(path, None, readonly=True, s3={
            **ceph.s3_params(bucket), "regionendpoint": endpoint})
        yield relay_config, relay


def unreadable(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["kind"] == "unreadable"]


# --- failing listings ------------------------------------------------------------------------


def test_a_failing_blob_listing_stops_the_sweep_before_any_deletion(ceph, store, tmp_path,
                                                                      monkeypatch, client):
    bucket = ceph.copy_store(store.bucket)
    before = ceph.keys(bucket)
    broken = f"{V2}blobs/sha256/"  # the flat listing of the blob store (a small one)

    def fail(request: Request) -> Fault | None:
        if request.listing_prefix == broken and "delimiter" not in request.query:
            return Answer(500, "InternalError")
        return None

    monkeypatch.setattr(s3_module, "DEFAULT_ATTEMPTS", 4)
    time.sleep(1.1)
    with relayed(ceph, bucket, tmp_path / "c.yml", fail) as (config, relay):
        code, report, err = run_json(["gc", "--min-age", "1s", str(config)])
    assert code == 6, (report, err)
    assert len(relay.log) == 4 * s3_module.OUTER_ATTEMPTS, "retried before giving up"
    found = unreadable(report)
    assert found and broken.rstrip("/").removeprefix(V2) in found[0]["path"]
    assert broken in found[0]["message"] and "InternalError" in found[0]["message"]
    assert report["complete"] is False
    assert ceph.keys(bucket) == before


def test_a_listing_whose_connection_always_breaks_sweeps_nothing(ceph, store, tmp_path,
                                                                  monkeypatch, client):
    bucket = ceph.copy_store(store.bucket)
    before = ceph.keys(bucket)
    broken = f"{V2}blobs/sha256/"

    def reset(request: Request) -> Fault | None:
        if request.listing_prefix == broken and "delimiter" not in request.query:
            return Reset()
        return None

    monkeypatch.setattr(s3_module, "DEFAULT_ATTEMPTS", 2)
    time.sleep(1.1)
    with relayed(ceph, bucket, tmp_path / "c.yml", reset) as (config, relay):
        code, report, err = run_json(["gc", "--min-age", "1s", str(config)])
    assert code == 6, (report, err)
    assert len(relay.log) >= 2 * s3_module.OUTER_ATTEMPTS
    found = unreadable(report)
    assert found and broken in found[0]["message"]
    assert ceph.keys(bucket) == before


def test_a_truncated_listing_is_an_incomplete_mark(ceph, store, tmp_path, client):
    bucket = ceph.copy_store(store.bucket)
    before = ceph.keys(bucket)

    def truncated(body: bytes) -> bytes:
        body = body.replace(b"<IsTruncated>false</IsTruncated>", b"<IsTruncated>true</IsTruncated>")
        return re.sub(rb"<NextContinuationToken>[^<]*</NextContinuationToken>", b"", body)

    def truncate(request: Request) -> Fault | None:
        if (request.listing_prefix or "").endswith("/_manifests/revisions/"):
            return Rewrite(truncated)
        return None

    time.sleep(1.1)
    with relayed(ceph, bucket, tmp_path / "c.yml", truncate) as (config, relay):
        code, report, err = run_json(["gc", "-m", "--min-age", "1s", str(config)])
    assert code == 6, (report, err)
    assert relay.log
    assert any("truncated without a usable continuation token" in f["message"]
               for f in unreadable(report))
    assert ceph.keys(bucket) == before


def test_a_listing_that_strays_outside_its_prefix_removes_nothing(ceph, store, tmp_path,
                                                                   client):
    bucket = ceph.copy_store(store.bucket)
    ceph.client().put_object(Bucket=bucket, Key="store/elsewhere/keep",
                             Body=b"not the registry's")
    before = ceph.keys(bucket)
    key = f"blobs/sha256/{store.orphan[7:9]}/{store.orphan[7:]}"
    stray = (b"<Contents><Key>store/elsewhere/keep</Key><LastModified>2020-01-01T00:00:00.000Z"
             b"</LastModified><ETag>&quot;0&quot;</ETag><Size>1</Size></Contents>")

    def slip_in(request: Request) -> Fault | None:
        if request.listing_prefix == f"{V2}{key}/":
            return Rewrite(lambda body: body.replace(b"</ListBucketResult>",
                                                     stray + b"</ListBucketResult>"))
        return None

    with relayed(ceph, bucket, tmp_path / "c.yml", slip_in) as (config, relay):
        s3 = S3Store.from_settings(s3_settings(load_config(config, {})), writable=True)
        assert (type(s3.client).__name__ == "WireClient") == (client == "light")
        failed = s3.remove_trees([key])
        assert relay.log and "outside" in failed[key]
        assert ceph.keys(bucket) == before
        for bad in ("../elsewhere", "blobs/../../elsewhere", "/blobs", "blobs//x", ""):
            assert "not a plain relative path" in s3.remove_trees([bad])[bad]
            with pytest.raises(StoreError):
                s3.remove_tree(bad)
    assert ceph.keys(bucket) == before


# --- throttling, resets and broken bodies ----------------------------------------------------


def first_tries(times: int, fault: Fault) -> Callable[[Request], Fault | None]:
    """``fault`` for the first ``times`` tries of every request, then the request passes."""
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def decide(request: Request) -> Fault | None:
        key = f"{request} {request.headers.get('range', '')}"
        with lock:
            seen[key] = seen.get(key, 0) + 1
            return fault if seen[key] <= times else None

    return decide


@pytest.mark.parametrize("fault", [Answer(503, "SlowDown"), Reset()], ids=["slowdown", "reset"])
def test_throttling_and_resets_are_retried_and_change_nothing(ceph, store, tmp_path,
                                                              monkeypatch, client, fault):
    with relayed(ceph, store.bucket, tmp_path / "calm.yml") as (config, _):
        code, calm, _ = run_json(["gc", "--dry-run", "-m", "--min-age", "0", str(config)])
    assert code == 0
    # Every request is refused three times, then let through: more than the client's own
    # attempts allow, so regstore's retries count too.
    monkeypatch.setattr(s3_module, "DEFAULT_ATTEMPTS", 3)
    with relayed(ceph, store.bucket, tmp_path / "c.yml", first_tries(3, fault)) as \
            (config, relay):
        code, hindered, _ = run_json(["gc", "--dry-run", "-m", "--min-age", "0", str(config)])
    assert code == 0, hindered["findings"]
    assert len(relay.log) > 150  # three refusals for each of the run's requests
    assert hindered["items"] == calm["items"] and hindered["summary"] == calm["summary"]


def manifest_get(store: SimpleNamespace, request: Request) -> bool:
    """Whether ``request`` is regstore reading the first tag's manifest to mark."""
    return request.method == "GET" and "/blobs/sha256/" in request.path and \
        store.record["tags"][0]["digest"][7:] in request.path and "range" in request.headers


def test_throttling_that_never_ends_mid_mark_sweeps_nothing(ceph, store, tmp_path, client):
    bucket = ceph.copy_store(store.bucket)
    before = ceph.keys(bucket)
    time.sleep(1.1)
    with relayed(ceph, bucket, tmp_path / "c.yml",
                 lambda r: Answer(503, "SlowDown") if manifest_get(store, r) else None) as \
            (config, relay):
        code, report, err = run_json(["gc", "--min-age", "1s", str(config)])
    assert code == 6, (report, err)
    assert relay.log
    assert any(f["kind"] == "unreadable-manifest" and "SlowDown" in f["message"]
               for f in report["findings"])
    assert ceph.keys(bucket) == before


def test_a_manifest_whose_body_always_breaks_off_sweeps_nothing(ceph, store, tmp_path, client):
    bucket = ceph.copy_store(store.bucket)
    before = ceph.keys(bucket)
    time.sleep(1.1)
    with relayed(ceph, bucket, tmp_path / "c.yml",
                 lambda r: CutBody() if manifest_get(store, r) else None) as (config, relay):
        code, report, err = run_json(["gc", "--min-age", "1s", str(config)])
    assert code == 6, (report, err)
    assert relay.log
    assert any(f["kind"] == "unreadable-manifest" for f in report["findings"])
    assert ceph.keys(bucket) == before


def test_a_blob_whose_body_breaks_off_is_unreadable_not_corrupt(ceph, store, tmp_path, client):
    def cut(request: Request) -> Fault | None:
        if request.method == "GET" and request.path.endswith("/data") and \
                "/blobs/sha256/" in request.path and "range" not in request.headers:
            return CutBody()
        return None

    with relayed(ceph, store.bucket, tmp_path / "c.yml", cut) as (config, relay):
        code, report, err = run_json(["verify", "--no-state", str(config)])
    assert relay.log, "verify streamed blobs"
    kinds = {f["kind"] for f in report["findings"]}
    assert "blob-corrupt" not in kinds, report["findings"]
    assert "unreadable" in kinds and code != 0, (report, err)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A self-signed certificate for 127.0.0.1, made with openssl."""
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return SimpleNamespace(cert=cert, key=key)


@pytest.mark.parametrize("trust", ["ca-bundle", "skipverify", "nothing"])
def test_an_https_endpoint_is_verified_as_the_config_says(ceph, store, tmp_path, monkeypatch,
                                                         client, certificate, trust):
    with relayed(ceph, store.bucket, tmp_path / "calm.yml") as (config, _):
        code, calm, _ = run_json(["gc", "--dry-run", "--min-age", "0", str(config)])
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(certificate.cert, certificate.key)
    if trust == "ca-bundle":
        monkeypatch.setenv("AWS_CA_BUNDLE", str(certificate.cert))
    else:
        monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    monkeypatch.setattr(s3_module, "DEFAULT_ATTEMPTS", 1)
    relay = FaultRelay(ceph.endpoint, tls=server)
    with relay as endpoint:
        assert endpoint.startswith("https://")
        config = write_config(tmp_path / "tls.yml", None, readonly=True, s3={
            **ceph.s3_params(store.bucket), "regionendpoint": endpoint, "secure": True,
            "skipverify": trust == "skipverify"})
        code, report, err = run_json(["gc", "--dry-run", "--min-age", "0", str(config)])
    if trust == "nothing":
        assert code == 3, (report, err)
        assert "certificate" in report["error"].lower() and "verif" in report["error"].lower()
        assert relay.requests == 0
    else:
        assert code == 0, (report, err)
        assert relay.requests > 50 and report["items"] == calm["items"]


# --- what only the light client does ----------------------------------------------------------


def test_the_light_client_reads_a_broken_off_manifest_again(ceph, store, tmp_path, monkeypatch):
    monkeypatch.delenv("REGSTORE_S3_CLIENT", raising=False)
    monkeypatch.setattr(s3wire, "BACKOFF", 0.01)
    with relayed(ceph, store.bucket, tmp_path / "calm.yml") as (config, _):
        code, calm, _ = run_json(["gc", "--dry-run", "--min-age", "0", str(config)])
    broken_once = first_tries(1, CutBody())
    with relayed(ceph, store.bucket, tmp_path / "c.yml",
                 lambda r: broken_once(r) if manifest_get(store, r) else None) as \
            (config, relay):
        code, report, err = run_json(["gc", "--dry-run", "--min-age", "0", str(config)])
    assert code == 0, (report, err)
    assert len(relay.log) == 1  # a ranged GET is read whole within the client's retries
    assert report["items"] == calm["items"] and report["findings"] == calm["findings"]


def test_connections_closed_while_idle_are_replaced_without_a_retry(ceph, store, tmp_path,
                                                                   monkeypatch):
    monkeypatch.delenv("REGSTORE_S3_CLIENT", raising=False)
    with relayed(ceph, store.bucket, tmp_path / "calm.yml") as (config, _):
        code, calm, _ = run_json(["gc", "--dry-run", "-m", "--min-age", "0", str(config)])
    # One attempt per request and no retry by regstore: a replaced connection must not count.
    monkeypatch.setattr(s3_module, "DEFAULT_ATTEMPTS", 1)
    monkeypatch.setattr(s3_module, "OUTER_ATTEMPTS", 1)
    with relayed(ceph, store.bucket, tmp_path / "c.yml", close_after_answer=True) as \
            (config, relay):
        code, report, err = run_json(["gc", "--dry-run", "-m", "--min-age", "0",
                                      "--jobs", "2", str(config)])
    assert code == 0, (report, err)
    assert relay.requests > 50
    assert report["items"] == calm["items"] and report["findings"] == calm["findings"]


# --- the lock -----------------------------------------------------------------------------
# Through stores opened as regstore opens them: the light client reads the lock, boto3 writes.


def opened(ceph: Ceph, bucket: str, *, writable: bool = False) -> S3Store:
    settings = S3Settings(bucket=bucket, region="us-east-1", rootdirectory="/store",
                          endpoint=ceph.endpoint, accesskey=ceph.access_key,
                          secretkey=ceph.secret_key, secure=False, path_style=True)
    return S3Store.from_settings(settings, writable=writable)


def test_of_runs_racing_for_the_s3_lock_exactly_one_wins(ceph, store):
    stores = [opened(ceph, store.bucket, writable=True) for _ in range(8)]
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
    s3 = opened(ceph, store.bucket, writable=True)
    with S3StoreLock(s3, "regstore gc -m", heartbeat=60):
        code, report, _ = run_json(["gc", "--dry-run", str(ceph.config(tmp_path / "c.yml", store.bucket,
                                                                 readonly=True))])
        assert code == 5
        assert "'regstore gc -m'" in report["error"] and "renewed" in report["error"]
        with pytest.raises(Locked):
            S3StoreLock(opened(ceph, store.bucket), "regstore gc").acquire()
    config = ceph.config(tmp_path / "c.yml", store.bucket, readonly=True)
    code, _, _ = run_json(["gc", "--dry-run", str(config)])
    assert code == 0


def test_a_renewed_lock_stays_and_a_stale_one_is_taken_over(ceph, store):
    holder_store = opened(ceph, store.bucket, writable=True)
    holder = S3StoreLock(holder_store, "regstore gc", heartbeat=0.2, stale_after=1.5)
    holder.acquire()
    try:
        time.sleep(2)  # beyond stale_after, but renewed all along
        with pytest.raises(Locked):
            S3StoreLock(opened(ceph, store.bucket), "regstore gc",
                        stale_after=1.5).acquire()
        # The holder dies without releasing: its renewals stop.
        holder._stop.set()
        assert holder._thread is not None
        holder._thread.join()
        time.sleep(2)
        taker = S3StoreLock(opened(ceph, store.bucket, writable=True),
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

