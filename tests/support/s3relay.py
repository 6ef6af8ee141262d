"""A fault-injecting HTTP relay on 127.0.0.1 in front of an S3 server (Ceph's radosgw).

regstore is pointed at the relay (``regionendpoint``), so whatever client it uses, boto3 or the
light client of ``regstore.store.s3wire``, every request of a run passes it. For each request
``decide`` may return a fault, else the request goes to the server unchanged (its signature
stays valid: the ``Host`` header and the request line are passed as they came):

* :class:`Answer`: an S3 error answer (status and code) instead of the server's;
* :class:`Reset`: the connection is reset without an answer;
* :class:`Rewrite`: the server's answer with its body changed (a listing truncated, a key
  slipped in);
* :class:`CutBody`: the server's answer, its body cut off halfway and the connection closed.

With ``close_after_answer`` the relay also closes every connection right after each answer,
without announcing it, as a server does with connections it keeps idle too long; with ``tls``
(a server-side SSL context) it speaks HTTPS to regstore. Each fault applied is appended to
:attr:`FaultRelay.log`.
"""

from __future__ import annotations

import http.client
import http.server
import socket
import ssl
import struct
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable

#: headers that concern one connection, never passed on
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer",
                         "transfer-encoding", "upgrade", "expect", "content-length"})


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names

    @property
    def listing_prefix(self) -> str | None:
        """The prefix of a ListObjectsV2 request, else None."""
        if self.method == "GET" and self.query.get("list-type") == "2":
            return self.query.get("prefix", "")
        return None

    def __str__(self) -> str:
        query = urllib.parse.urlencode(sorted(self.query.items()))
        return f"{self.method} {self.path}{'?' + query if query else ''}"


@dataclass(frozen=True)
class Answer:
    status: int
    code: str


@dataclass(frozen=True)
class Reset:
    pass


@dataclass(frozen=True)
class Rewrite:
    change: Callable[[bytes], bytes] = field(compare=False)


@dataclass(frozen=True)
class CutBody:
    pass


Fault = Answer | Reset | Rewrite | CutBody


class FaultRelay:
    """The relay; :meth:`start` returns its endpoint, :meth:`stop` ends it (a context manager
    does both)."""

    def __init__(self, upstream: str, decide: Callable[[Request], Fault | None] | None = None,
                 *, close_after_answer: bool = False, tls: ssl.SSLContext | None = None) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.decide = decide or (lambda request: None)
        self.close_after_answer = close_after_answer
        self.tls = tls
        self.log: list[str] = []
        self.requests = 0
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        relay = self

        class Handler(_Handler):
            owner = relay

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def note(self, fault: Fault, request: Request) -> None:
        with self._lock:
            self.log.append(f"{type(fault).__name__} {request}")


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: FaultRelay
    protocol_version = "HTTP/1.1"
    upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the tests read FaultRelay.log

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.upstream is not None:
                self.upstream.close()

    def do_GET(self) -> None:
        self._relay()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urllib.parse.urlsplit(self.path)
        request = Request(self.command, urllib.parse.unquote(split.path),
                          dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True)),
                          {k.lower(): v for k, v in self.headers.items()})
        with self.owner._lock:
            self.owner.requests += 1
        fault = self.owner.decide(request)
        if fault is not None:
            self.owner.note(fault, request)
        if isinstance(fault, Reset):
            self._reset()
            return
        if isinstance(fault, Answer):
            self._error(fault)
            return
        status, reason, headers, answer = self._forward(body)
        if isinstance(fault, Rewrite):
            answer = fault.change(answer)
        self.send_response_only(status, reason)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        if self.command == "HEAD":
            declared = next((v for n, v in headers if n.lower() == "content-length"), "0")
            self.send_header("Content-Length", declared)
        else:
            self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if isinstance(fault, CutBody):
            self.wfile.write(answer[:len(answer) // 2])
            self.wfile.flush()
            self._reset()
            return
        if self.command != "HEAD":
            self.wfile.write(answer)
        self.wfile.flush()
        if self.owner.close_after_answer:
            self.close_connection = True

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        for attempt in range(2):
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection(*self.owner.upstream, timeout=60)
            try:
                self.upstream.putrequest(self.command, self.path, skip_host=True,
                                         skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in _HOP_BY_HOP:
                        self.upstream.putheader(name, value)
                self.upstream.putheader("Content-Length", str(len(body)))
                self.upstream.endheaders(body)
                response = self.upstream.getresponse()
                answer = response.read()
                return response.status, response.reason, response.getheaders(), answer
            except (OSError, http.client.HTTPException):
                self.upstream.close()
                self.upstream = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _error(self, fault: Answer) -> None:
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
                "<Message>injected by the test relay</Message></Error>").encode()
        self.send_response_only(fault.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body) if self.command != "HEAD" else 0))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout: close() sends a RST instead of a FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
