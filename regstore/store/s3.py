"""The S3 backend: a registry store kept in a bucket by the registry's ``s3`` driver.

The driver writes the filesystem layout's keys under ``<rootdirectory>/docker/registry/v2/``
in the bucket, without a leading slash (distribution's s3-aws ``s3Path``: the root with its
trailing slashes trimmed, the path appended, leading slashes trimmed). S3 has no directories:

* :meth:`S3Store.list_dir` is a ``ListObjectsV2`` with ``Delimiter="/"``: common prefixes are
  directories, objects are files;
* :meth:`S3Store.walk` is one flat ``ListObjectsV2`` of the prefix, which gives every object's
  size and ``LastModified`` for free (``flat_walk``: callers walk rather than list many small
  directories);
* a "directory" exists while any object below it does: :meth:`S3Store.stat` of a key with no
  object of its own answers ``is_dir`` when something lies below it;
* removing a directory lists what is below it and deletes that with ``DeleteObjects``, up to
  1,000 keys a request; emptied directories vanish by themselves. Removing an upload
  (``_uploads/<id>``) also aborts its unfinished multipart upload (the driver writes upload
  data part by part; it is no object until the push completes).

Requests go through one of two clients with the same methods and answers (:func:`open_client`):
:class:`~regstore.store.s3wire.WireClient`, which makes the read requests itself (its own
HTTP/1.1 over kept sockets) and hands writes to boto3, for configs with an access key and
signature version 4 (see that module for exactly which); boto3 for everything else.

Every listing is checked to be whole: a page that says it is truncated without a continuation
token, a token that comes back twice, or a key outside the prefix asked for fails the listing
(:class:`StoreError`), so a caller never mistakes part of a prefix for all of it. Throttling,
5xx answers and broken connections are retried by the client (10 attempts, exponential
backoff with jitter, while its retry budget lasts: botocore's standard mode, or the light
client's own), and when the client gives up (its budget runs dry under sustained throttling)
by regstore itself, 5 more times with a backoff of up to 30 s, before a request fails.

Nothing is ever deleted outside ``<rootdirectory>/docker/registry/v2/``: keys are checked as
the filesystem store checks them, and every object key a removal lists is checked again to lie
below the key being removed. regstore's own objects (the lock) live under
``<rootdirectory>/.regstore/``, beside the registry's tree, through the separate ``*_state``
methods, which never delete below ``docker/``.
"""

from __future__ import annotations

import io
import os
from datetime import datetime
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterator, NoReturn, Sequence

from regstore.layout import V2_PREFIX
from regstore.store.base import DirEntry, FileEntry, ReadOnlyStore, Stat, StoreError, check_key

DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes
PAGE_SIZE = 1000  # the most keys one ListObjectsV2 page returns
DEFAULT_ATTEMPTS = 10  # botocore's attempts per request, the first included
# botocore stops retrying once its retry quota is spent (sustained throttling drains it): then
# regstore itself tries the request again, this many times, after OUTER_BACKOFF * 2**n seconds
# (capped at 30 s, with jitter), before the request fails.
OUTER_ATTEMPTS = 5
OUTER_BACKOFF = 1.0
STATE_DIR = ".regstore"
_STATE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


@dataclass(frozen=True)
class S3Settings:
    """How to reach the bucket: what the registry's ``storage.s3`` section says.

    ``accesskey``/``secretkey`` empty means the usual AWS chain (environment, shared
    credentials file, instance role). ``endpoint`` is the ``regionendpoint`` as a URL (None
    for AWS itself); ``path_style`` is the addressing the registry uses (2.8 forces path style
    with a ``regionendpoint``); ``v4auth`` False signs with the legacy signature version 2.
    """

    bucket: str
    region: str
    rootdirectory: str = ""
    endpoint: str | None = None
    accesskey: str = ""
    secretkey: str = ""
    secure: bool = True
    skipverify: bool = False
    v4auth: bool = True
    path_style: bool = False

    def prefix(self) -> str:
        """The key prefix of the registry's tree, ending in ``/``."""
        return _s3_path(self.rootdirectory, f"/{V2_PREFIX}/")

    def state_prefix(self) -> str:
        """The key prefix of regstore's own objects, beside the registry's tree."""
        return _s3_path(self.rootdirectory, f"/{STATE_DIR}/")


def _s3_path(rootdirectory: str, path: str) -> str:
    # distribution 2.8 s3-aws: strings.TrimLeft(strings.TrimRight(root, "/")+path, "/")
    return (rootdirectory.rstrip("/") + path).lstrip("/")


def open_client(settings: S3Settings, jobs: int = 8) -> Any:
    """The client a store of ``settings`` makes its requests with: the light client of
    :mod:`regstore.store.s3wire` where it serves such settings (it makes boto3's client for
    writes when the first one comes), else a boto3 client (:func:`connect`)."""
    from regstore.store import s3wire

    if s3wire.unsupported(settings, os.environ) is not None:
        return connect(settings, jobs)
    try:
        return s3wire.WireClient(settings, attempts=DEFAULT_ATTEMPTS,
                                 fallback=lambda: connect(settings, jobs))
    except s3wire.S3ProtocolError as exc:
        raise StoreError("", str(exc)) from None


def connect(settings: S3Settings, jobs: int = 8, retries: int | None = None) -> Any:
    """A boto3 S3 client for ``settings``, with standard retries (``retries`` attempts in all,
    :data:`DEFAULT_ATTEMPTS` by default) and a connection pool large enough for ``jobs``
    threads."""
    import boto3
    from botocore.config import Config
    from botocore.parsers import ResponseParserFactory

    config = Config(
        region_name=settings.region,
        signature_version="s3v4" if settings.v4auth else "s3",
        retries={"mode": "standard", "total_max_attempts": retries or DEFAULT_ATTEMPTS},
        connect_timeout=10, read_timeout=60,
        max_pool_connections=max(10, 2 * jobs + 2),
        s3={"addressing_style": "path" if settings.path_style else "auto"},
        # Only what the operation requires: S3-compatible stores (Ceph, older MinIO) reject
        # or ignore the newer default checksums.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session()
    # botocore parses every LastModified of a listing with dateutil, a third of the CPU time
    # of a dry run; the formats S3 uses (ISO 8601 in listings, RFC 1123 in headers) need not.
    factory = ResponseParserFactory()
    factory.set_parser_defaults(timestamp_parser=_parse_timestamp)
    session._session.register_component("response_parser_factory", factory)
    kwargs: dict[str, Any] = {"config": config, "use_ssl": settings.secure}
    if settings.endpoint:
        kwargs["endpoint_url"] = settings.endpoint
    if settings.skipverify:
        kwargs["verify"] = False
    if settings.accesskey and settings.secretkey:
        kwargs["aws_access_key_id"] = settings.accesskey
        kwargs["aws_secret_access_key"] = settings.secretkey
    return session.client("s3", **kwargs)


class StateConflict(StoreError):
    """A conditional write of one of regstore's own objects found it changed (HTTP 412)."""


@dataclass(frozen=True)
class StateObject:
    """One of regstore's own objects: its content, ETag, when it was last written and what
    the server's clock said when it was read (both seconds since the epoch)."""

    body: bytes
    etag: str
    last_modified: float
    server_now: float


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _status(exc: Exception) -> int:
    response = getattr(exc, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _describe(exc: Exception) -> str:
    code = _error_code(exc)
    if code:
        message = (getattr(exc, "response", None) or {}).get("Error", {}).get("Message")
        return f"{code}{': ' + message if message else ''} (HTTP {_status(exc)})"
    return str(exc) or type(exc).__name__


def _transient(exc: Exception) -> bool:
    """Whether a failed request may succeed when tried again (throttling, 5xx, connection)."""
    transient = getattr(exc, "transient", None)  # the light client's errors say
    if transient is not None:
        return bool(transient)
    from regstore.store.s3wire import transient_answer

    if transient_answer(_status(exc), _error_code(exc)):
        return True
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError
    except ImportError:  # pragma: no cover - botocore comes with boto3
        return False
    return isinstance(exc, (BotoConnectionError, HTTPClientError))


def _parse_timestamp(value: str) -> datetime:
    """An S3 timestamp: ISO 8601 (listings), RFC 1123 (headers), else botocore's own parser."""
    from regstore.store.s3wire import as_utc, http_date

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        header = http_date(value)
        if header is None:
            from botocore.utils import parse_timestamp
            return parse_timestamp(value)  # type: ignore[no-any-return]
        return header
    return as_utc(parsed)


_MD5_RE = re.compile(r"[0-9a-f]{32}")


def _md5(etag: str | None) -> str | None:
    """The MD5 an ETag is, or None: a multipart upload's ETag (``<md5>-<parts>``) and an
    SSE-KMS object's are not the MD5 of the content, and neither looks like a bare one."""
    value = (etag or "").strip('"').lower()
    return value if _MD5_RE.fullmatch(value) else None


def _server_time(response: dict[str, Any]) -> float | None:
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not date:
        return None
    from regstore.store.s3wire import http_date

    parsed = http_date(date)
    return parsed.timestamp() if parsed is not None else None


class _Body(io.RawIOBase):
    """A GET's streaming body as a file: ``readinto`` for hashing, every failure an OSError."""

    def __init__(self, key: str, body: Any) -> None:
        self.key = key
        self.body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self.body.read(len(view))
        except Exception as exc:  # botocore/urllib3 stream errors: the read failed
            raise OSError(f"{self.key}: reading failed: {_describe(exc)}") from None
        view[:len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self.body.close()
        finally:
            super().close()


class S3Store:
    """A store in an S3 bucket (see the module docstring for how keys and listings map).

    ``jobs`` bounds the threads a batched removal lists prefixes with. ``guard``, when set
    (by the store's lock), is called before every deletion request and raises
    :class:`StoreError` to stop removals, e.g. when the lock was lost.
    """

    flat_walk = True
    forkable = False  # a client's kept connections and threads do not survive a fork
    waits = True  # every request is a round trip: pools need not first find that out

    def __init__(self, client: Any, bucket: str, rootdirectory: str = "", *,
                 writable: bool = False, jobs: int = 8) -> None:
        self.client = client
        self.bucket = bucket
        self.rootdirectory = rootdirectory
        self.prefix = _s3_path(rootdirectory, f"/{V2_PREFIX}/")
        self.state_prefix = _s3_path(rootdirectory, f"/{STATE_DIR}/")
        self.location = f"s3://{bucket}/{self.prefix.rstrip('/')}"
        self.writable = writable
        self.jobs = max(1, jobs)
        self.guard: Callable[[], None] | None = None
        #: seconds the server's clock is ahead of ours (measured by :meth:`exists`); object
        #: times are reported on our clock, as the grace period compares them with it
        self.clock_offset = 0.0
        self._requests = 0
        self._lock = threading.Lock()
        self._bare_etags = False  # whether If-Match needs the ETag without its quotes

    @classmethod
    def from_settings(cls, settings: S3Settings, *, writable: bool = False,
                      jobs: int = 8) -> "S3Store":
        return cls(open_client(settings, jobs), settings.bucket, settings.rootdirectory,
                   writable=writable, jobs=jobs)

    @property
    def identity(self) -> str:
        """Endpoint, bucket and prefix: what tells this store from any other."""
        endpoint = getattr(getattr(self.client, "meta", None), "endpoint_url", "")
        return f"{endpoint} {self.bucket} {self.prefix}"

    @property
    def requests(self) -> int:
        """How many S3 requests this store made (retries not counted)."""
        return self._requests

    def _call(self, operation: str, key: str, **params: Any) -> dict[str, Any]:
        with self._lock:
            self._requests += 1
        attempt = 0
        while True:
            try:
                return getattr(self.client, operation)(Bucket=self.bucket, **params)  # type: ignore[no-any-return]
            except Exception as exc:
                attempt += 1
                if attempt < OUTER_ATTEMPTS and _transient(exc):
                    time.sleep(random.random() * min(30.0, OUTER_BACKOFF * 2 ** attempt))
                    continue
                self._fail(exc, operation, key)

    def _fail(self, exc: Exception, operation: str, key: str) -> NoReturn:
        """Raise what a failed request means for the caller."""
        if _status(exc) == 412:
            raise StateConflict(key, f"changed meanwhile: {_describe(exc)}") from None
        if _error_code(exc) in ("NoSuchKey", "404", "NotFound", "NoSuchUpload"):
            raise FileNotFoundError(key) from None
        raise StoreError(key, f"{operation} failed: {_describe(exc)}") from None

    def key_of(self, key: str) -> str:
        """The object key of store key ``key`` (checked)."""
        check_key(key)
        return self.prefix + key

    def _time(self, when: Any) -> float:
        # Whole seconds: a listing gives milliseconds, a HEAD's Last-Modified header only
        # seconds, and a re-check must see the same time as the listing it checks.
        return float(int(when.timestamp())) - self.clock_offset

    # --- reading ------------------------------------------------------------------------

    def exists(self) -> bool:
        response = self._call("list_objects_v2", "", Prefix=self.prefix, MaxKeys=1)
        server = _server_time(response)
        if server is not None and abs(server - time.time()) > 2:
            self.clock_offset = server - time.time()
        return bool(response.get("KeyCount") or response.get("Contents"))

    def _pages(self, key: str, prefix: str, delimiter: str | None) -> Iterator[dict[str, Any]]:
        """Every page of a listing of ``prefix``, checked to be whole."""
        params: dict[str, Any] = {"Prefix": prefix, "MaxKeys": PAGE_SIZE}
        if delimiter:
            params["Delimiter"] = delimiter
        seen: set[str] = set()
        while True:
            try:
                page = self._call("list_objects_v2", key, **params)
            except FileNotFoundError:
                raise StoreError(key, "cannot list: the bucket answered 'not found'") from None
            except StoreError as exc:
                raise StoreError(key, f"cannot list {prefix!r}: {exc.message}") from None
            for item in page.get("Contents", []) + page.get("CommonPrefixes", []):
                name = item.get("Key", item.get("Prefix", ""))
                if not name.startswith(prefix):
                    raise StoreError(key, f"listing of {prefix!r} returned {name!r}, outside "
                                          "it; the listing cannot be trusted")
            yield page
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")
            if not token or token in seen:
                raise StoreError(key, f"listing of {prefix!r} came back truncated without a "
                                      "usable continuation token; it is incomplete")
            seen.add(token)
            params["ContinuationToken"] = token

    def list_dir(self, key: str) -> list[DirEntry]:
        prefix = self.key_of(key) + "/"
        files: list[DirEntry] = []
        dirs: list[DirEntry] = []
        for page in self._pages(key, prefix, "/"):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix):]
                if name:  # "key/" itself: a folder marker some tools write
                    files.append(DirEntry(name, "file"))
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(prefix):].rstrip("/")
                if name:
                    dirs.append(DirEntry(name, "dir"))
        # A name can be an object and a prefix at once; the directory is listed last so that
        # a caller keeping one kind per name keeps the directory.
        return files + dirs

    def walk(self, key: str) -> Iterator[FileEntry]:
        prefix = self.key_of(key) + "/"
        for page in self._pages(key, prefix, None):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix):]
                if not rel or rel.endswith("/") or "//" in rel:
                    continue  # folder markers; a key with an empty component names no file
                yield FileEntry(f"{key}/{rel}", "file", int(obj.get("Size", 0)),
                                self._time(obj["LastModified"]), _md5(obj.get("ETag")))

    def stat(self, key: str) -> Stat | None:
        object_key = self.key_of(key)
        try:
            head = self._call("head_object", key, Key=object_key)
        except FileNotFoundError:
            head = None
        if head is not None:
            return Stat(int(head.get("ContentLength", 0)), self._time(head["LastModified"]))
        # No object of its own: a "directory" while anything lies below it.
        page = self._call("list_objects_v2", key, Prefix=object_key + "/", MaxKeys=1)
        contents = page.get("Contents", [])
        if not contents:
            return None
        return Stat(0, self._time(contents[0]["LastModified"]), is_dir=True)

    def holds_only_file(self, key: str, name: str) -> bool:
        return False  # never cheaper than the flat listings this store is read by

    def subdirectories(self, key: str) -> list[str] | None:
        return None  # likewise

    def read(self, key: str, max_bytes: int) -> bytes:
        object_key = self.key_of(key)
        try:
            response = self._call("get_object", key, Key=object_key, Range=f"bytes=0-{max_bytes}")
        except StoreError as exc:
            if "InvalidRange" not in exc.message:
                raise StoreError(key, f"cannot read: {exc.message}") from None
            return b""  # a range on an empty object: S3 answers 416
        try:
            data = response["Body"].read()
        except Exception as exc:
            raise StoreError(key, f"cannot read: {_describe(exc)}") from None
        if len(data) > max_bytes:
            raise StoreError(key, f"larger than {max_bytes} bytes")
        return bytes(data)

    def open(self, key: str) -> BinaryIO:
        try:
            response = self._call("get_object", key, Key=self.key_of(key))
        except StoreError as exc:
            if "InvalidRange" in exc.message:
                return io.BytesIO(b"")
            raise StoreError(key, f"cannot open: {exc.message}") from None
        return io.BufferedReader(_Body(key, response["Body"]), 1024 * 1024)  # type: ignore[return-value]

    # --- removals -------------------------------------------------------------------------

    def _writable(self, key: str) -> None:
        if not self.writable:
            raise ReadOnlyStore(key, "store opened read-only; nothing may be removed")

    def remove_file(self, key: str) -> None:
        self._writable(key)
        failed = self._delete([self.key_of(key)], {self.key_of(key): key})
        if failed:
            raise StoreError(key, f"cannot remove: {failed[key]}")

    def remove_tree(self, key: str) -> None:
        failed = self.remove_trees([key])
        if failed:
            raise StoreError(key, failed[key])

    def remove_trees(self, keys: Sequence[str]) -> dict[str, str]:
        self._writable(keys[0] if keys else "")
        failed: dict[str, str] = {}
        owner: dict[str, str] = {}  # object key -> the store key being removed
        keys = list(dict.fromkeys(keys))
        if self.guard is not None:
            try:
                self.guard()
            except StoreError as exc:
                return {key: exc.message for key in keys}

        def below(key: str) -> list[str] | str:
            try:
                prefix = self.key_of(key) + "/"
                objects = [o["Key"] for page in self._pages(key, prefix, None)
                           for o in page.get("Contents", [])]
            except StoreError as exc:
                return exc.message
            # The listing was asked for this prefix and checked; check each key once more,
            # since this is the one place keys become deletions.
            for name in objects:
                if not name.startswith(prefix) or not name.startswith(self.prefix):
                    return f"listing returned {name!r}, outside {prefix!r}; nothing removed"
            return objects

        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            for key, found in zip(keys, pool.map(below, keys)):
                if isinstance(found, str):
                    failed[key] = f"cannot list what is below it: {found}"
                    continue
                for name in found:
                    owner[name] = key
        failed.update(self._delete(list(owner), owner))
        for key in keys:
            if key not in failed and "/_uploads/" in f"/{key}/":
                failed.update(self._abort_uploads(key))
        return failed

    def _abort_uploads(self, key: str) -> dict[str, str]:
        """An upload's data is an unfinished multipart upload until the push completes (the
        driver writes it part by part): abort those below ``key``, or they are kept, and
        billed, for ever."""
        prefix = self.key_of(key) + "/"
        try:
            if self.guard is not None:
                self.guard()
            pending = self._call("list_multipart_uploads", key, Prefix=prefix)
            for upload in pending.get("Uploads", []):
                if upload.get("Key", "").startswith(prefix):
                    self._call("abort_multipart_upload", key, Key=upload["Key"],
                               UploadId=upload["UploadId"])
        except FileNotFoundError:
            return {}  # NoSuchUpload: aborted meanwhile
        except StoreError as exc:
            return {key: f"cannot abort its unfinished multipart upload: {exc.message}"}
        return {}

    def _delete(self, object_keys: list[str], owner: dict[str, str]) -> dict[str, str]:
        """Delete objects in batches; return the store keys whose objects could not all go."""
        failed: dict[str, str] = {}
        batches = [object_keys[i:i + DELETE_BATCH]
                   for i in range(0, len(object_keys), DELETE_BATCH)]

        def run(batch: list[str]) -> dict[str, str]:
            errors: dict[str, str] = {}
            try:
                if self.guard is not None:
                    self.guard()
                response = self._call("delete_objects", owner[batch[0]], Delete={
                    "Objects": [{"Key": k} for k in batch], "Quiet": True})
            except StoreError as exc:
                return {owner[k]: exc.message for k in batch}
            for error in response.get("Errors", []):
                name = error.get("Key", "")
                if error.get("Code") == "NoSuchKey":
                    continue  # gone already: the removal's goal holds
                errors[owner.get(name, name)] = (f"cannot remove {name}: {error.get('Code')}"
                                                 f" {error.get('Message') or ''}".rstrip())
            return errors

        with ThreadPoolExecutor(max_workers=min(self.jobs, 4)) as pool:
            for errors in pool.map(run, batches):
                for key, message in errors.items():
                    failed.setdefault(key, message)
        return failed

    def remove_empty_dirs(self, key: str, stop: str) -> None:
        self._writable(key)  # S3 has no directories: an emptied one is gone already

    # --- regstore's own objects (the lock), beside the registry's tree ----------------------

    def _state_key(self, name: str) -> str:
        if not _STATE_NAME_RE.fullmatch(name):
            raise StoreError(name, "not a name for one of regstore's own objects")
        return self.state_prefix + name

    def get_state(self, name: str) -> StateObject | None:
        """One of regstore's own objects (``<rootdirectory>/.regstore/<name>``), or None."""
        try:
            response = self._call("get_object", name, Key=self._state_key(name))
            body = response["Body"].read()
        except FileNotFoundError:
            return None
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(name, f"cannot read: {_describe(exc)}") from None
        server = _server_time(response) or time.time()
        return StateObject(bytes(body), str(response.get("ETag", "")),
                           float(response["LastModified"].timestamp()), server)

    def put_state(self, name: str, body: bytes, *, if_none_match: bool = False,
                  if_match: str | None = None) -> str:
        """Write one of regstore's own objects, conditionally: ``if_none_match`` only where
        there is none (``If-None-Match: *``), ``if_match`` only over that ETag. Raises
        :class:`StateConflict` when the condition fails. Returns the new ETag."""
        params: dict[str, Any] = {"Key": self._state_key(name), "Body": body,
                                  "ContentType": "application/json"}
        if if_none_match:
            params["IfNoneMatch"] = "*"
        if if_match is None:
            return str(self._call("put_object", name, **params).get("ETag", ""))
        # The ETag is quoted, as HTTP wants it; Ceph's radosgw (16) compares If-Match with the
        # bare value. A 412 while the object still has that very ETag means the server wants
        # the other form; the form that worked is kept for the next time.
        bare = if_match.strip('"')
        quoted = f'"{bare}"'
        for form in ([bare, quoted] if self._bare_etags else [quoted, bare]):
            try:
                response = self._call("put_object", name, IfMatch=form, **params)
            except StateConflict:
                current = self.get_state(name)
                if current is None or current.etag.strip('"') != bare:
                    raise
                continue
            self._bare_etags = form == bare
            return str(response.get("ETag", ""))
        raise StateConflict(name, "the server refuses If-Match in either form")

    def delete_state(self, name: str) -> None:
        """Delete one of regstore's own objects (never anything of the registry's)."""
        self._call("delete_object", name, Key=self._state_key(name))
