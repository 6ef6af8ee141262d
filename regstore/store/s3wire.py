"""A light S3 client for what a run reads: listings, ranged GETs, HEADs, the lock's GET.

A dry run of a store of a few thousand blobs makes hundreds of small requests. Through boto3
each one costs about 1.5 ms of CPU (request building, event hooks, signing, response parsing),
and importing boto3 and making a client costs 0.2 s more; on a machine whose cores the S3
server shares, that is most of the run. :class:`WireClient` makes the read requests itself,
over sockets it keeps, speaking the little of HTTP/1.1 that S3's answers use:

* ``ListObjectsV2`` (``encoding-type=url``, keys decoded), ``GetObject`` (with or without a
  ``Range``; a ranged GET is read whole inside the retry loop, a whole object is streamed, its
  length checked against ``Content-Length``) and ``HeadObject``;
* signed with AWS Signature Version 4 in the ``Authorization`` header (:func:`sign_v4`,
  written from AWS's description of the algorithm; the payload of every request is empty);
* over persistent HTTP/1.1 connections kept for reuse (in steady state one per thread), plain
  or TLS as the endpoint says; TLS verifies against the system's CAs or ``AWS_CA_BUNDLE``,
  or not at all with ``skipverify``; bodies framed by ``Content-Length`` or chunked coding,
  a body that ends early is an error, never a short object;
* answering in the shapes boto3 answers in (the same keys, ``LastModified`` as a datetime,
  errors carrying ``response["Error"]["Code"]`` and the HTTP status), so that
  :class:`~regstore.store.s3.S3Store` treats both clients alike;
* retrying throttling (``SlowDown``, 429 …), 5xx answers, timeouts and broken connections up to
  ``attempts`` times with exponential backoff and full jitter (at most :data:`MAX_BACKOFF`
  seconds a wait), while a retry budget shared by all threads lasts (:class:`RetryBudget`);
  S3Store retries again on top, as it does over boto3. A kept connection the server closed
  while idle is replaced at once, without counting as an attempt.

Writes (``PutObject`` of the lock, ``DeleteObject(s)``, multipart uploads) go to a boto3 client
made on first use, so that a dry run, which writes nothing, never imports boto3.

When the light client is not used: :func:`unsupported` names the settings it leaves to boto3,
which then makes every request: no ``accesskey``/``secretkey`` in the config (credentials from
the AWS chain: environment, shared files, instance role); ``v4auth: false`` (signature version
2); virtual-hosted addressing on a ``regionendpoint`` (``forcepathstyle: false``), or of a
bucket name that is no plain DNS label; no ``regionendpoint`` and a region outside AWS's
commercial, GovCloud and China partitions, or an endpoint set by ``AWS_ENDPOINT_URL`` or
``AWS_ENDPOINT_URL_S3``; a proxy in the environment (``HTTP_PROXY``, ``HTTPS_PROXY``,
``ALL_PROXY``); an endpoint that is no plain http(s) URL; and ``REGSTORE_S3_CLIENT=boto3`` in
the environment, which asks for boto3 outright.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import re
import socket
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from datetime import datetime, timezone
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Callable, Mapping

import regstore

if TYPE_CHECKING:
    import ssl  # imported when an endpoint speaks TLS

#: SHA-256 of an empty payload, the body of every request this client makes
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: error codes that mean "try again later", whatever the status
THROTTLING_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException",
                              "RequestLimitExceeded", "TooManyRequests", "RequestTimeout",
                              "InternalError", "ServiceUnavailable"})
#: statuses that mean the same
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
#: the first retry waits up to BACKOFF seconds, each further one up to twice as long ...
BACKOFF = 1.0
#: ... but never more than this
MAX_BACKOFF = 20.0
#: idle connections kept at most (more threads than this open and close their own)
MAX_IDLE = 64

_AWS_REGION_RE = re.compile(r"(?:us-gov|cn|[a-z]{2})-[a-z]+-[0-9]{1,2}")
_HOST_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{1,61})[a-z0-9]")
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def transient_answer(status: int, code: str) -> bool:
    """Whether an error answer may go away when the request is made again."""
    return status in TRANSIENT_STATUSES or code in THROTTLING_CODES


def unsupported(settings: Any, environ: Mapping[str, str]) -> str | None:
    """Why the light client cannot serve a store of ``settings`` (boto3 then does), or None."""
    if environ.get("REGSTORE_S3_CLIENT", "").strip().lower() == "boto3":
        return "REGSTORE_S3_CLIENT=boto3 asks for boto3"
    if not (settings.accesskey and settings.secretkey):
        return "credentials come from the AWS chain"
    if not settings.v4auth:
        return "v4auth is false: signature version 2"
    if settings.endpoint:
        parts = urllib.parse.urlsplit(settings.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or \
                parts.fragment or parts.username or parts.password or \
                not parts.netloc.isascii():
            return f"regionendpoint {settings.endpoint!r} is no plain http(s) URL"
        try:
            _ = parts.port  # raises for a port that is not a number in range
        except ValueError:
            return f"regionendpoint {settings.endpoint!r} has no valid port"
    else:
        if environ.get("AWS_ENDPOINT_URL") or environ.get("AWS_ENDPOINT_URL_S3"):
            return "the endpoint comes from AWS_ENDPOINT_URL"
        if not _AWS_REGION_RE.fullmatch(settings.region) or "-iso" in settings.region:
            return f"region {settings.region!r} is not in a partition the light client knows"
    if not settings.path_style and settings.endpoint:
        return "virtual-hosted addressing on a regionendpoint (forcepathstyle: false)"
    if not settings.path_style and not _HOST_LABEL_RE.fullmatch(settings.bucket):
        return f"bucket {settings.bucket!r} is no plain host name label"
    for name in _PROXY_VARIABLES:
        if environ.get(name) or environ.get(name.upper()):
            return f"a proxy is set ({name.upper()})"
    return None


def endpoint_url(settings: Any) -> str:
    """The endpoint as boto3 names it (``client.meta.endpoint_url``): the configured one, or
    AWS's regional endpoint."""
    if settings.endpoint:
        return str(settings.endpoint)
    suffix = "amazonaws.com.cn" if settings.region.startswith("cn-") else "amazonaws.com"
    return f"{'https' if settings.secure else 'http'}://s3.{settings.region}.{suffix}"


_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def as_utc(moment: datetime) -> datetime:
    """``moment`` with its zone, or as UTC if it has none: S3 times are UTC, and one without a
    zone must not be read as this machine's local time."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def http_date(text: str) -> datetime | None:
    """An HTTP date header as an aware datetime, or None if it is none. The form servers send
    (``Fri, 01 Mar 2024 10:20:30 GMT``) is read directly; the obsolete ones through the
    email package."""
    parts = text.split()
    if len(parts) == 6 and parts[5] == "GMT" and parts[2] in _MONTHS:
        clock = parts[4].split(":")
        if len(clock) == 3 and all(p.isdigit() for p in (parts[1], parts[3], *clock)):
            try:
                return datetime(int(parts[3]), _MONTHS[parts[2]], int(parts[1]),
                                int(clock[0]), int(clock[1]), int(clock[2]), tzinfo=timezone.utc)
            except ValueError:
                return None
    import email.utils

    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return as_utc(parsed)


# --- Signature Version 4 ----------------------------------------------------------------------


def uri_encode(text: str, *, keep_slash: bool = False) -> str:
    """Percent-encode every byte of ``text``'s UTF-8 but the unreserved ``A-Z a-z 0-9 - . _ ~``
    (and ``/`` when ``keep_slash``), with upper-case hex: SigV4's ``UriEncode``."""
    return urllib.parse.quote(text, safe="/" if keep_slash else "")


def canonical_query(query: list[tuple[str, str]]) -> str:
    """The query string as signed (and sent): encoded names and values, sorted."""
    return "&".join(f"{k}={v}" for k, v in
                    sorted((uri_encode(k), uri_encode(v)) for k, v in query))


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """The key a day's requests to ``service`` in ``region`` are signed with."""
    key = ("AWS4" + secret_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign_v4(method: str, path: str, query: str, headers: Mapping[str, str], payload_hash: str,
            *, access_key: str, key: bytes, amz_date: str, region: str,
            service: str = "s3") -> str:
    """The ``Authorization`` header of a request. ``path`` is the URI-encoded path as sent,
    ``query`` the canonical query string, ``headers`` those to sign (every one of them is),
    ``key`` from :func:`signing_key` for ``amz_date``'s day."""
    names = sorted(name.lower() for name in headers)
    values = {name.lower(): " ".join(str(value).split()) for name, value in headers.items()}
    signed = ";".join(names)
    canonical = "\n".join([method, path or "/", query,
                           "".join(f"{n}:{values[n]}\n" for n in names), signed, payload_hash])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, "
            f"Signature={signature}")


# --- errors -------------------------------------------------------------------------------------


class S3ResponseError(Exception):
    """An error answer. ``response`` has boto3's shape (``Error.Code``, ``Error.Message``,
    ``ResponseMetadata.HTTPStatusCode``)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str]) -> None:
        super().__init__(f"{code}: {message} (HTTP {status})" if message else
                         f"{code} (HTTP {status})")
        self.status = status
        self.code = code
        self.transient = transient_answer(status, code)
        self.response = {"Error": {"Code": code, "Message": message},
                         "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers}}


class S3ConnectionError(Exception):
    """No answer: the connection could not be made, broke, or timed out (``transient``), or
    the server's TLS certificate failed verification (not)."""

    def __init__(self, message: str, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class S3ProtocolError(Exception):
    """An answer that is not what S3 sends (a listing without ``IsTruncated``, bad XML)."""

    transient = False


class RetryBudget:
    """Retries the client may still make, shared by its threads: each retry takes
    :data:`RETRY_COST` (:data:`TIMEOUT_COST` after a timeout or a broken connection), each
    request that succeeds gives back what its retries took, or 1 if it needed none, up to the
    starting :data:`CAPACITY`. Under throttling that does not end, retries stop once it is
    spent and requests fail early instead of piling up, until answers come back."""

    CAPACITY = 500
    RETRY_COST = 5
    TIMEOUT_COST = 10

    def __init__(self) -> None:
        self.left = self.CAPACITY
        self._lock = threading.Lock()

    def take(self, cost: int) -> bool:
        with self._lock:
            if cost > self.left:
                return False
            self.left -= cost
            return True

    def give(self, amount: int) -> None:
        with self._lock:
            self.left = min(self.CAPACITY, self.left + amount)


# --- the client ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Meta:
    endpoint_url: str
    region_name: str


class _Stream:
    """A GET's body as it arrives, its length checked: ``read`` raises
    :class:`S3ConnectionError` when the connection ends before ``Content-Length`` bytes came.
    Read to its end, the connection goes back to the client for reuse."""

    def __init__(self, client: "WireClient", connection: "_Connection",
                 answer: "_Answer") -> None:
        self._client = client
        self._connection: _Connection | None = connection
        self._answer = answer

    def read(self, amount: int | None = None) -> bytes:
        connection = self._connection
        if connection is None:
            return b""
        try:
            data = self._answer.read(amount)
        except (OSError, _Broken) as exc:
            self.close()
            raise S3ConnectionError(f"the body broke off: {_reason(exc)}") from None
        if self._answer.done:
            self._connection = None
            self._client._release(connection, self._answer)
        return data

    def close(self) -> None:
        # Unread bytes would be taken for the next answer: a connection closed early goes.
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class WireClient:
    """An S3 client for one bucket with the methods, arguments and answers S3Store uses of a
    boto3 client: ``list_objects_v2``, ``get_object`` and ``head_object`` itself, every
    other operation through the boto3 client ``fallback()`` makes on first use."""

    _DELEGATED = frozenset({"put_object", "delete_object", "delete_objects",
                            "list_multipart_uploads", "abort_multipart_upload"})

    def __init__(self, settings: Any, *, attempts: int, fallback: Callable[[], Any],
                 environ: Mapping[str, str] = os.environ) -> None:
        self.bucket = settings.bucket
        self.attempts = max(1, attempts)
        self.meta = _Meta(endpoint_url(settings), settings.region)
        parts = urllib.parse.urlsplit(self.meta.endpoint_url)
        if not settings.endpoint and settings.region == "us-east-1":
            # AWS's first region answers on the global name too, and boto3 uses that.
            parts = parts._replace(netloc="s3.amazonaws.com")
        base = parts.path.rstrip("/")
        if settings.path_style:
            self.host = parts.netloc
            self.root = f"{base}/{uri_encode(self.bucket)}"
        else:
            self.host = f"{self.bucket}.{parts.netloc}"
            self.root = base
        self._address = (f"{self.bucket}.{parts.hostname}" if not settings.path_style
                         else parts.hostname or "",
                         parts.port or (443 if parts.scheme == "https" else 80))
        self._tls: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._tls = _tls_context(settings.skipverify, environ.get("AWS_CA_BUNDLE"))
        self._access_key = settings.accesskey
        self._secret_key = settings.secretkey
        self._region = settings.region
        self._keys: dict[str, bytes] = {}
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._fallback = fallback
        self._boto3: Any = None
        self.budget = RetryBudget()
        self._agent = f"regstore/{regstore.__version__}"

    def __getattr__(self, name: str) -> Any:
        if name in WireClient._DELEGATED:
            return getattr(self._writer(), name)
        raise AttributeError(name)

    def _writer(self) -> Any:
        with self._lock:
            if self._boto3 is None:
                self._boto3 = self._fallback()
            return self._boto3

    # --- the operations -----------------------------------------------------------------------

    def list_objects_v2(self, *, Bucket: str, Prefix: str = "", MaxKeys: int = 1000,
                        Delimiter: str | None = None,
                        ContinuationToken: str | None = None) -> dict[str, Any]:
        self._check_bucket(Bucket)
        query = [("list-type", "2"), ("prefix", Prefix), ("max-keys", str(MaxKeys)),
                 ("encoding-type", "url")]
        if Delimiter:
            query.append(("delimiter", Delimiter))
        if ContinuationToken:
            query.append(("continuation-token", ContinuationToken))
        status, headers, body = self._request("GET", self.root or "/", query, {},
                                              parse=parse_listing)
        page: dict[str, Any] = body
        page["ResponseMetadata"] = {"HTTPStatusCode": status, "HTTPHeaders": headers}
        return page

    def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        self._check_bucket(Bucket)
        status, headers, _ = self._request("HEAD", self._path(Key), [], {})
        return self._object_answer(status, headers)

    def get_object(self, *, Bucket: str, Key: str, Range: str | None = None) -> dict[str, Any]:
        """A ranged GET is read whole (inside the retries); a whole object streams."""
        self._check_bucket(Bucket)
        extra = {"range": Range} if Range else {}
        status, headers, body = self._request("GET", self._path(Key), [], extra,
                                              stream=not Range)
        answer = self._object_answer(status, headers)
        answer["Body"] = body if not Range else _Bytes(body)
        return answer

    def _check_bucket(self, bucket: str) -> None:
        if bucket != self.bucket:
            raise ValueError(f"this client serves bucket {self.bucket!r}, not {bucket!r}")

    def _path(self, key: str) -> str:
        return f"{self.root}/{uri_encode(key, keep_slash=True)}"

    @staticmethod
    def _object_answer(status: int, headers: dict[str, str]) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers}}
        if "etag" in headers:
            answer["ETag"] = headers["etag"]
        if "content-length" in headers:
            try:
                answer["ContentLength"] = int(headers["content-length"])
            except ValueError:
                raise S3ProtocolError("the answer's Content-Length is "
                                      f"{headers['content-length']!r}") from None
        if "last-modified" in headers:
            modified = http_date(headers["last-modified"])
            if modified is None:
                raise S3ProtocolError("the answer's Last-Modified header is not a date: "
                                      f"{headers['last-modified']!r}")
            answer["LastModified"] = modified
        return answer

    # --- requests -----------------------------------------------------------------------------

    def _request(self, method: str, path: str, query: list[tuple[str, str]],
                 extra: dict[str, str], *, stream: bool = False,
                 parse: Callable[[bytes], Any] | None = None) -> tuple[int, dict[str, str], Any]:
        """Make a request, retrying what may pass next time; return its status, headers
        (lower-case names) and body: a :class:`_Stream` with ``stream``, the body parsed by
        ``parse``, or the bytes."""
        query_string = canonical_query(query)
        target = path + (f"?{query_string}" if query_string else "")
        attempt, spent = 0, 0
        while True:
            attempt += 1
            cost = RetryBudget.RETRY_COST
            try:
                head = self._head(method, path, query_string, target, extra)
                answer = self._exchange(method, head, stream, parse)
                self.budget.give(spent or 1)
                return answer
            except S3ResponseError as exc:
                error: Exception = exc
                if not exc.transient:
                    raise
            except S3ConnectionError as exc:
                if not exc.transient:
                    raise
                error, cost = exc, RetryBudget.TIMEOUT_COST
            if attempt >= self.attempts or not self.budget.take(cost):
                raise error
            spent += cost
            time.sleep(random.random() * min(MAX_BACKOFF, BACKOFF * 2 ** (attempt - 1)))

    def _head(self, method: str, path: str, query: str, target: str,
              extra: dict[str, str]) -> bytes:
        """The request line and headers of a request, signed now."""
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        headers = {"host": self.host, "x-amz-date": amz_date,
                   "x-amz-content-sha256": EMPTY_SHA256, **extra}
        headers["authorization"] = sign_v4(
            method, path, query, headers, EMPTY_SHA256, access_key=self._access_key,
            key=self._signing_key(amz_date[:8]), amz_date=amz_date, region=self._region)
        headers["user-agent"] = self._agent
        lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
        text = "\r\n".join(lines) + "\r\n\r\n"
        if text.count("\n") != len(lines) + 1 or "\r" in text.replace("\r\n", ""):
            raise S3ProtocolError("a request header would carry a line break")
        return text.encode("ascii")

    def _exchange(self, method: str, head: bytes, stream: bool,
                  parse: Callable[[bytes], Any] | None) -> tuple[int, dict[str, str], Any]:
        connection: _Connection | None = None
        try:
            connection, reused = self._take()
            try:
                connection.send(head)
                answer = connection.answer(method)
            except (ConnectionError, _NoAnswer):
                if not reused:
                    raise
                # A kept connection the server closed while it was idle: a new one, at once.
                connection.close()
                connection, reused = self._take(fresh=True)
                connection.send(head)
                answer = connection.answer(method)
            if 200 <= answer.status < 300 and stream:
                return answer.status, answer.headers, _Stream(self, connection, answer)
            body = answer.read()
        except (OSError, _Broken) as exc:
            if connection is not None:
                connection.close()
            raise _connection_error(method, self.meta.endpoint_url, exc) from None
        self._release(connection, answer)
        if not 200 <= answer.status < 300:
            raise _error_answer(answer.status, answer.reason, answer.headers, body)
        return answer.status, answer.headers, parse(body) if parse is not None else body

    def _signing_key(self, date: str) -> bytes:
        key = self._keys.get(date)
        if key is None:
            key = signing_key(self._secret_key, date, self._region, "s3")
            self._keys = {date: key}
        return key

    # --- connections --------------------------------------------------------------------------

    def _take(self, fresh: bool = False) -> tuple["_Connection", bool]:
        """A kept connection (and True), or a new one (and False)."""
        if not fresh:
            with self._lock:
                if self._idle:
                    return self._idle.pop(), True
        return _Connection(self._address, self._tls), False

    def _release(self, connection: "_Connection", answer: "_Answer") -> None:
        """Keep ``connection`` for the next request if its answer allows."""
        if answer.keep and answer.done:
            with self._lock:
                if len(self._idle) < MAX_IDLE:
                    self._idle.append(connection)
                    return
        connection.close()

    def close(self) -> None:
        """Close the kept connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


# --- HTTP/1.1 -----------------------------------------------------------------------------------
# The few parts of HTTP/1.1 an S3 answer uses, over a kept socket: a status line, headers, and a
# body framed by Content-Length or chunked transfer coding (or, from an HTTP/1.0 server, by the
# end of the connection). http.client does the same with more generality, and spends three
# times the CPU per request building and parsing; with the server on the same cores, that CPU
# is taken from the server.

_MAX_LINE = 65536
_MAX_HEADERS = 200


class _Broken(Exception):
    """The connection broke, timed out, or carried something that is not HTTP/1.1."""


class _NoAnswer(_Broken):
    """The connection ended before the first byte of an answer (a kept connection the server
    had closed while it was idle)."""


class _Connection:
    """One kept HTTP/1.1 connection: its socket (TLS for https) and a buffered reader."""

    def __init__(self, address: tuple[str, int], tls: ssl.SSLContext | None) -> None:
        sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname=address[0])
            sock.settimeout(READ_TIMEOUT)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.reader = sock.makefile("rb", buffering=65536)

    def send(self, head: bytes) -> None:
        self.sock.sendall(head)

    def answer(self, method: str) -> "_Answer":
        """Read the status line and headers of the next answer (skipping 1xx ones)."""
        first = True
        while True:
            line = self.reader.readline(_MAX_LINE + 1)
            if not line:
                if first:
                    raise _NoAnswer("the connection closed without an answer")
                raise _Broken("the connection closed within an answer")
            first = False
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or \
                    not parts[1].isdigit() or len(parts[1]) != 3:
                raise _Broken(f"not an HTTP/1.x status line: {line[:80]!r}")
            status = int(parts[1])
            reason = parts[2].strip().decode("latin-1") if len(parts) > 2 else ""
            headers = self._headers()
            if 100 <= status < 200 and status != 101:
                continue  # an interim answer (100 Continue): the real one follows
            return _Answer(self, method, parts[0] == b"HTTP/1.0", status, reason, headers)

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        last = ""
        for _ in range(_MAX_HEADERS):
            line = self.reader.readline(_MAX_LINE + 1)
            if not line.endswith(b"\n"):
                raise _Broken("the connection closed within the headers" if len(line) <=
                              _MAX_LINE else "a header line is too long")
            if line in (b"\r\n", b"\n"):
                return headers
            text = line.decode("latin-1").rstrip("\r\n")
            if text[:1] in (" ", "\t") and last:
                headers[last] += " " + text.strip()  # an obsolete folded line
                continue
            name, colon, value = text.partition(":")
            if not colon or not name or name != name.strip():
                raise _Broken(f"not a header line: {text[:80]!r}")
            last = name.lower()
            value = value.strip()
            headers[last] = f"{headers[last]}, {value}" if last in headers else value
        raise _Broken("too many header lines")

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            self.sock.close()


class _Answer:
    """An answer's status, headers and body, read as it comes (``read``); ``keep`` says whether
    the connection can carry another request once the body is read (``done``)."""

    def __init__(self, connection: _Connection, method: str, old: bool, status: int,
                 reason: str, headers: dict[str, str]) -> None:
        self.reader = connection.reader
        self.status = status
        self.reason = reason
        self.headers = headers
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        self.keep = "close" not in tokens and (not old or "keep-alive" in tokens)
        self.chunked = False
        self.left: int | None = None  # bytes of the body still to come, when known
        if method == "HEAD" or status in (204, 304):
            self.left = 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self.chunked = True
            self._chunk = 0  # bytes left in the current chunk
        elif "content-length" in headers:
            try:
                self.left = int(headers["content-length"])
            except ValueError:
                raise _Broken(f"Content-Length is {headers['content-length']!r}") from None
            if self.left < 0:
                raise _Broken(f"Content-Length is {self.left}")
        else:
            self.keep = False  # the body ends with the connection
        self.done = self.left == 0

    def read(self, amount: int | None = None) -> bytes:
        """Up to ``amount`` bytes of the body (all that is left without), ``b""`` at its end.
        Raises :class:`_Broken` when the connection ends before the body does."""
        if self.done or amount == 0:
            return b""
        if self.chunked:
            return self._read_chunked(amount)
        if self.left is None:  # to the end of the connection
            data = self.reader.read() if amount is None else self.reader.read(amount)
            if not data:
                self.done = True
            return data
        n = self.left if amount is None else min(amount, self.left)
        data = self.reader.read(n)
        if len(data) < n:
            raise _Broken(f"the body broke off {self.left - len(data)} bytes short of its "
                          "Content-Length")
        self.left -= n
        self.done = self.left == 0
        return data

    def _read_chunked(self, amount: int | None) -> bytes:
        pieces: list[bytes] = []
        want = amount
        while want is None or want > 0:
            if self._chunk == 0:
                line = self.reader.readline(_MAX_LINE + 1)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _Broken(f"not a chunk size: {line[:40]!r}") from None
                if size < 0:
                    raise _Broken(f"not a chunk size: {line[:40]!r}")
                if size == 0:
                    self._trailers()
                    self.done = True
                    break
                self._chunk = size
            n = self._chunk if want is None else min(want, self._chunk)
            data = self.reader.read(n)
            if len(data) < n:
                raise _Broken("the body broke off within a chunk")
            pieces.append(data)
            self._chunk -= n
            if want is not None:
                want -= n
            if self._chunk == 0 and self.reader.read(2) != b"\r\n":
                raise _Broken("a chunk does not end in CRLF")
        return b"".join(pieces)

    def _trailers(self) -> None:
        for _ in range(_MAX_HEADERS):
            line = self.reader.readline(_MAX_LINE + 1)
            if not line.endswith(b"\n"):
                raise _Broken("the connection closed within the trailers")
            if line in (b"\r\n", b"\n"):
                return  # trailers carry nothing this client reads
        raise _Broken("too many trailer lines")


class _Bytes:
    """A body read already, with the ``read``/``close`` a stream has."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, amount: int | None = None) -> bytes:
        if amount is None:
            data, self._data = self._data, b""
        else:
            data, self._data = self._data[:amount], self._data[amount:]
        return data

    def close(self) -> None:
        self._data = b""


def _tls_context(skipverify: bool, ca_bundle: str | None) -> "ssl.SSLContext":
    import ssl

    try:
        context = ssl.create_default_context(cafile=ca_bundle or None)
    except (OSError, ssl.SSLError) as exc:
        raise S3ProtocolError(f"cannot load the CA bundle AWS_CA_BUNDLE={ca_bundle}: "
                              f"{_reason(exc)}") from None
    if skipverify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, _Broken):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _connection_error(method: str, endpoint: str, exc: BaseException) -> S3ConnectionError:
    import ssl

    if isinstance(exc, ssl.SSLCertVerificationError):
        return S3ConnectionError(f"{method} {endpoint}: the server's TLS certificate failed "
                                 f"verification ({exc.verify_message}); give its CA with "
                                 "AWS_CA_BUNDLE, or set storage.s3.skipverify", transient=False)
    return S3ConnectionError(f"{method} {endpoint}: {_reason(exc)}")


def _error_answer(status: int, reason: str, headers: dict[str, str],
                  body: bytes) -> S3ResponseError:
    """What an error answer says: S3's XML error document, or (a HEAD has no body) the
    status alone, as boto3 reports it (the code is the status then)."""
    code = str(status)
    message = reason or (HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_
                         else "")
    if body and b"<!DOCTYPE" not in body and b"<!ENTITY" not in body:
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            root = None
        if root is not None and _local(root.tag) == "Error":
            code = (root.findtext("Code") or root.findtext(f"{_ns(root.tag)}Code") or code)
            message = (root.findtext("Message") or root.findtext(f"{_ns(root.tag)}Message")
                       or message)
    region = headers.get("x-amz-bucket-region")
    if region and 300 <= status < 400:
        message = f"{message}; the bucket is in region {region}: set storage.s3.region"
    return S3ResponseError(status, code, message, headers)


# --- listings -----------------------------------------------------------------------------------


def _ns(tag: str) -> str:
    return tag[:tag.index("}") + 1] if tag.startswith("{") else ""


def _local(tag: str) -> str:
    return tag[tag.index("}") + 1:] if tag.startswith("{") else tag


_PAGE_TEXT = frozenset({"Name", "Prefix", "Delimiter", "EncodingType", "StartAfter",
                        "ContinuationToken", "NextContinuationToken"})
_PAGE_INT = frozenset({"KeyCount", "MaxKeys"})


def parse_listing(body: bytes) -> dict[str, Any]:
    """A ``ListObjectsV2`` answer as boto3 gives it: ``Contents`` (``Key``, ``Size``,
    ``LastModified`` as a datetime, ``ETag``), ``CommonPrefixes`` (``Prefix``),
    ``IsTruncated``, ``NextContinuationToken``…, keys URL-decoded when the answer says they
    are encoded. Raises :class:`S3ProtocolError` for anything that is not a whole listing
    (``IsTruncated`` missing or not a boolean, an entry without its key, bad XML, a DTD)."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise S3ProtocolError("the listing carries a DTD; S3 sends none")
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise S3ProtocolError(f"the listing is not well-formed XML ({exc})") from None
    ns = _ns(root.tag)
    if root.tag != ns + "ListBucketResult":
        raise S3ProtocolError(f"the answer is {_local(root.tag)!r}, not a listing")
    contents_tag, prefixes_tag = ns + "Contents", ns + "CommonPrefixes"
    key_tag, size_tag, modified_tag, etag_tag, prefix_tag = (
        ns + "Key", ns + "Size", ns + "LastModified", ns + "ETag", ns + "Prefix")
    page: dict[str, Any] = {}
    contents: list[dict[str, Any]] = []
    prefixes: list[dict[str, str]] = []
    for child in root:
        tag = child.tag
        if tag == contents_tag:
            item: dict[str, Any] = {}
            for field in child:
                if field.tag == key_tag:
                    item["Key"] = field.text or ""
                elif field.tag == size_tag:
                    item["Size"] = _integer(field.text, "Size")
                elif field.tag == modified_tag:
                    item["LastModified"] = _iso_time(field.text)
                elif field.tag == etag_tag:
                    item["ETag"] = field.text or ""
            if not item.get("Key") or "LastModified" not in item:
                raise S3ProtocolError("the listing has an entry without Key or LastModified")
            contents.append(item)
        elif tag == prefixes_tag:
            name = child.findtext(prefix_tag)
            if not name:
                raise S3ProtocolError("the listing has a common prefix without Prefix")
            prefixes.append({"Prefix": name})
        else:
            local = _local(tag)
            if local == "IsTruncated":
                text = (child.text or "").strip()
                if text not in ("true", "false"):
                    raise S3ProtocolError(f"the listing's IsTruncated is {text!r}")
                page["IsTruncated"] = text == "true"
            elif local in _PAGE_TEXT:
                page[local] = child.text or ""
            elif local in _PAGE_INT:
                page[local] = _integer(child.text, local)
    if "IsTruncated" not in page:
        raise S3ProtocolError("the listing does not say whether it is truncated")
    if page.get("EncodingType") == "url":
        for item in contents:
            item["Key"] = _unquote(item["Key"])
        for common in prefixes:
            common["Prefix"] = _unquote(common["Prefix"])
        for name in ("Prefix", "Delimiter", "StartAfter"):
            if name in page:
                page[name] = _unquote(page[name])
    if contents:
        page["Contents"] = contents
    if prefixes:
        page["CommonPrefixes"] = prefixes
    return page


def _unquote(text: str) -> str:
    # A registry's keys have nothing encoded but their slashes (radosgw encodes those).
    plain = text.replace("%2F", "/")
    return urllib.parse.unquote_plus(text) if "%" in plain or "+" in plain else plain


def _integer(text: str | None, name: str) -> int:
    try:
        return int(text or "")
    except ValueError:
        raise S3ProtocolError(f"the listing's {name} is {text!r}, not a number") from None


def _iso_time(text: str | None) -> datetime:
    try:
        parsed = datetime.fromisoformat(text or "")
    except ValueError:
        raise S3ProtocolError(f"the listing's LastModified is {text!r}, not a time") from None
    return as_utc(parsed)  # as the boto3 path reads it
