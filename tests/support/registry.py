"""Drive the real registry (Debian's ``docker-registry``) over HTTP on 127.0.0.1.

regstore's end-to-end tests need ground truth: a store written by the registry itself, and a
way to prove that every image still pulls after regstore has collected garbage. This module
starts ``docker-registry serve`` on a store, talks to it with a small stdlib client of the
distribution HTTP API, and checks pulled content byte for byte against its digests.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

REGISTRY_BINARY = "docker-registry"

MEDIA_TYPE_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
MEDIA_TYPE_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
MEDIA_TYPE_SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_TYPE_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_OCI_ARTIFACT = "application/vnd.oci.artifact.manifest.v1+json"
MEDIA_TYPE_SCHEMA2_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_TYPE_SCHEMA2_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MEDIA_TYPE_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_OCI_EMPTY = "application/vnd.oci.empty.v1+json"

# Every manifest type a client may accept. Without the schema2 entry the registry rewrites a
# schema2 manifest fetched by tag into signed schema1, whose digest differs from the stored one.
ALL_MANIFEST_TYPES: tuple[str, ...] = (
    MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
    MEDIA_TYPE_MANIFEST_LIST,
    MEDIA_TYPE_SCHEMA2,
    MEDIA_TYPE_OCI_ARTIFACT,
    MEDIA_TYPE_SCHEMA1_SIGNED,
    MEDIA_TYPE_SCHEMA1,
)

SCHEMA1_MEDIA_TYPES = frozenset({MEDIA_TYPE_SCHEMA1, MEDIA_TYPE_SCHEMA1_SIGNED})


def sha256_digest(data: bytes) -> str:
    """Return the canonical ``sha256:<hex>`` digest of ``data``, as the registry names it."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def registry_binary() -> str | None:
    """Return the path of ``docker-registry`` on PATH, or None when it is not installed."""
    return shutil.which(REGISTRY_BINARY)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(
    path: Path,
    root: Path | None,
    *,
    readonly: bool = False,
    delete: bool = True,
    addr: str | None = None,
    schema1: bool = False,
    log_level: str = "warn",
    extra: Mapping[str, Any] | None = None,
    s3: Mapping[str, Any] | None = None,
) -> Path:
    """Write a registry ``config.yml`` at ``path`` for the filesystem store at ``root`` (or, with
    ``s3``, for the s3 driver with those parameters) and return the path; the same file serves
    ``docker-registry serve`` and ``garbage-collect``, and ``extra`` is merged in last (e.g.
    ``{"validation": ...}``).
    """
    if s3 is not None:
        # Without redirect.disable the registry answers blob GETs with a 307 to a presigned
        # URL of the bucket; the test client pulls through the registry itself.
        driver: dict[str, Any] = {"s3": dict(s3), "redirect": {"disable": True}}
    else:
        assert root is not None
        driver = {"filesystem": {"rootdirectory": str(Path(root).resolve())}}
    storage: dict[str, Any] = {
        **driver,
        "delete": {"enabled": delete},
        # The purger would delete the abandoned uploads a fixture keeps on purpose once they are
        # older than a week, which every committed fixture soon is.
        "maintenance": {
            "uploadpurging": {"enabled": False},
            "readonly": {"enabled": readonly},
        },
        # No storage.cache: a blob descriptor cache can claim a swept blob still exists
        # (distribution#1803), which would hide exactly what the tests look for.
    }
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": log_level, "formatter": "text", "accesslog": {"disabled": True}},
        "storage": storage,
        "http": {"addr": addr if addr is not None else f"127.0.0.1:{free_port()}"},
    }
    if schema1:
        # Needed to push schema1; serving a stored schema1 manifest works without it.
        config["compatibility"] = {"schema1": {"enabled": True}}
    _merge(config, extra or {})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


class RegistryHTTPError(Exception):
    """An HTTP answer the caller did not expect, with the request, the status and the body."""

    def __init__(self, method: str, url: str, status: int, body: bytes) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.body = body
        text = body.decode("utf-8", "replace")[:2000]
        super().__init__(f"{method} {url} -> HTTP {status}: {text}")


@dataclass(frozen=True)
class Response:
    """One HTTP answer of the registry: status, headers (lower-cased names) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """Return the value of the header ``name`` (any case), or None when it is absent."""
        return self.headers.get(name.lower())


class RegistryClient:
    """A small client of the distribution HTTP API (no auth), enough to push and pull images."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"need an http:// base URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.host = parsed.hostname
        self.port = parsed.port or 80
        self.timeout = timeout

    def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        expect: Iterable[int] | None = None,
    ) -> Response:
        """Send one request to ``target`` (a path with query, or an absolute URL on this registry)
        and return the answer; raise RegistryHTTPError when ``expect`` is given and the status is
        not in it.
        """
        path = self._path_of(target)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            raw = conn.getresponse()
            data = raw.read()
            response = Response(
                status=raw.status,
                headers={k.lower(): v for k, v in raw.getheaders()},
                body=data,
            )
        finally:
            conn.close()
        if expect is not None and response.status not in set(expect):
            raise RegistryHTTPError(method, self.base_url + path, response.status, response.body)
        return response

    def _path_of(self, target: str) -> str:
        # Upload locations come back as absolute URLs; only their path and query matter here.
        parsed = urllib.parse.urlsplit(target)
        if parsed.scheme:
            if (parsed.hostname, parsed.port or 80) != (self.host, self.port):
                raise ValueError(f"{target!r} is not on {self.base_url}")
            return parsed.path + (f"?{parsed.query}" if parsed.query else "")
        return target

    def ping(self) -> int:
        """Return the status of ``GET /v2/`` (200 once the registry serves)."""
        return self.request("GET", "/v2/").status

    def _start(self, repo: str) -> Response:
        return self.request("POST", f"/v2/{repo}/blobs/uploads/", body=b"", expect={202})

    def push_blob(self, repo: str, data: bytes) -> str:
        """Upload ``data`` into ``repo`` in one piece (POST, then PUT with the digest) and return
        its digest.
        """
        dgst = sha256_digest(data)
        location = self._start(repo).header("Location")
        assert location, "upload start without Location"
        separator = "&" if "?" in location else "?"
        self.request(
            "PUT",
            f"{location}{separator}digest={urllib.parse.quote(dgst)}",
            body=data,
            headers={"Content-Type": "application/octet-stream"},
            expect={201},
        )
        return dgst

    def start_upload(self, repo: str, data_part: bytes) -> str:
        """Start an upload in ``repo``, PATCH one chunk into it and leave it unfinished; return its
        upload UUID (the ``_uploads/<uuid>`` directory name).
        """
        started = self._start(repo)
        location = started.header("Location")
        assert location, "upload start without Location"
        patched = self.request(
            "PATCH",
            location,
            body=data_part,
            headers={"Content-Type": "application/octet-stream"},
            expect={202},
        )
        uuid = patched.header("Docker-Upload-UUID") or started.header("Docker-Upload-UUID")
        assert uuid, "upload without Docker-Upload-UUID"
        return uuid

    def push_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest under a tag or digest ``reference`` and return the Docker-Content-Digest
        the registry answers.
        """
        response = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            body=body,
            headers={"Content-Type": media_type},
            expect={201},
        )
        dgst = response.header("Docker-Content-Digest")
        assert dgst, f"manifest PUT {repo}:{reference} without Docker-Content-Digest"
        return dgst

    def get_manifest(
        self, repo: str, reference: str, accept: Iterable[str] = ALL_MANIFEST_TYPES
    ) -> tuple[bytes, str, str]:
        """GET a manifest by tag or digest and return its body, Docker-Content-Digest and
        Content-Type.
        """
        response = self.request(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            headers={"Accept": ", ".join(accept)},
            expect={200},
        )
        return (
            response.body,
            response.header("Docker-Content-Digest") or "",
            response.header("Content-Type") or "",
        )

    def head_manifest(
        self, repo: str, reference: str, accept: Iterable[str] = ALL_MANIFEST_TYPES
    ) -> int:
        """Return the status of HEAD on a manifest (200 present, 404 unknown)."""
        return self.request(
            "HEAD", f"/v2/{repo}/manifests/{reference}", headers={"Accept": ", ".join(accept)}
        ).status

    def get_blob(self, repo: str, digest: str) -> bytes:
        """GET a blob of ``repo`` and return its bytes."""
        return self.request("GET", f"/v2/{repo}/blobs/{digest}", expect={200}).body

    def head_blob(self, repo: str, digest: str) -> int:
        """Return the status of HEAD on a blob of ``repo`` (200 present, 404 unknown)."""
        return self.request("HEAD", f"/v2/{repo}/blobs/{digest}").status

    def delete_manifest(self, repo: str, digest: str) -> None:
        """DELETE a manifest by digest (a soft delete: its revision link and the tags on it go,
        blobs stay).
        """
        self.request("DELETE", f"/v2/{repo}/manifests/{digest}", expect={202})

    def tags(self, repo: str) -> list[str]:
        """Return the tags of ``repo`` as the registry lists them."""
        response = self.request("GET", f"/v2/{repo}/tags/list", expect={200})
        return list(json.loads(response.body).get("tags") or [])

    def catalog(self) -> list[str]:
        """Return every repository name of the catalog, following its pagination."""
        names: list[str] = []
        target: str | None = "/v2/_catalog?n=1000"
        while target:
            response = self.request("GET", target, expect={200})
            names.extend(json.loads(response.body).get("repositories") or [])
            target = _next_link(response.header("Link"))
        return names


def _next_link(link: str | None) -> str | None:
    # The catalog paginates with `Link: </v2/_catalog?last=x&n=1000>; rel="next"`.
    if not link or 'rel="next"' not in link:
        return None
    return link[link.index("<") + 1 : link.index(">")]


class RealRegistry:
    """A running ``docker-registry serve`` on a filesystem store (or, with ``s3``, on a bucket
    through the s3 driver), used as a context manager; ``url``, ``config_path`` and ``client``
    are set on entry, and exit stops the process it started (by PID). ``environ_without`` names
    variables the registry must not see (``AWS_CA_BUNDLE`` makes 2.8.2's s3 driver panic at
    start).
    """

    def __init__(
        self,
        root: Path | None,
        *,
        s3: Mapping[str, Any] | None = None,
        environ_without: Iterable[str] = (),
        readonly: bool = False,
        delete: bool = True,
        workdir: Path | None = None,
        schema1: bool = False,
        extra_config: Mapping[str, Any] | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.root = Path(root).resolve() if root is not None else None
        self.s3 = s3
        self.environ_without = tuple(environ_without)
        self.extra_config = extra_config
        self.readonly = readonly
        self.delete = delete
        self.workdir = workdir
        self.schema1 = schema1
        self.start_timeout = start_timeout
        self.url = ""
        self.config_path = Path()
        self.log_path = Path()
        self.client = RegistryClient("http://127.0.0.1")
        self._process: subprocess.Popen[bytes] | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> RealRegistry:
        binary = registry_binary()
        if binary is None:
            raise RuntimeError(f"{REGISTRY_BINARY} is not on PATH")
        if self.workdir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="regstore-registry-")
            workdir = Path(self._tempdir.name)
        else:
            workdir = Path(self.workdir)
            workdir.mkdir(parents=True, exist_ok=True)
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "config.yml"
        self.log_path = workdir / "registry.log"
        # free_port() can race with another process taking the port before the registry binds
        # it; a fresh port on a second try settles that.
        last_error: RuntimeError | None = None
        for _ in range(3):
            try:
                self._start(binary)
                return self
            except RuntimeError as error:
                last_error = error
                self._stop()
        self._cleanup()
        assert last_error is not None
        raise last_error

    def _start(self, binary: str) -> None:
        port = free_port()
        write_config(
            self.config_path,
            self.root,
            readonly=self.readonly,
            delete=self.delete,
            addr=f"127.0.0.1:{port}",
            schema1=self.schema1,
            extra=self.extra_config,
            s3=self.s3,
        )
        self.url = f"http://127.0.0.1:{port}"
        self.client = RegistryClient(self.url)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [binary, "serve", str(self.config_path)],
                env={k: v for k, v in os.environ.items() if k not in self.environ_without},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{REGISTRY_BINARY} exited with {self._process.returncode} before serving;"
                    f" log:\n{self.log()}"
                )
            try:
                if self.client.ping() == 200:
                    return
            except OSError:
                pass  # not listening yet
            time.sleep(0.05)
        raise RuntimeError(
            f"{REGISTRY_BINARY} did not answer GET /v2/ within {self.start_timeout}s;"
            f" log:\n{self.log()}"
        )

    def log(self) -> str:
        """Return what the registry wrote to its log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _cleanup(self) -> None:
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()
        self._cleanup()


# ---------------------------------------------------------------------------------------------
# Pulling and checking content


def schema1_payload(signed: bytes) -> bytes:
    """Return the unsigned payload of a signed (``prettyjws``) schema1 manifest: the bytes its
    digest is computed over.
    """
    # libtrust keeps the payload recoverable: each protected header records how many leading
    # bytes of the JWS are payload (formatLength) and the closing bytes that follow (formatTail).
    document = json.loads(signed)
    signatures = document.get("signatures") or []
    if not signatures:
        return signed
    protected = json.loads(_b64url_decode(signatures[0]["protected"]))
    return signed[: protected["formatLength"]] + _b64url_decode(protected["formatTail"])


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def manifest_digest_of(body: bytes, content_type: str) -> str:
    """Return the digest the registry gives a served manifest body (the payload's for signed
    schema1).
    """
    if content_type == MEDIA_TYPE_SCHEMA1_SIGNED or (
        content_type in SCHEMA1_MEDIA_TYPES and b'"signatures"' in body
    ):
        return sha256_digest(schema1_payload(body))
    return sha256_digest(body)


def manifest_children(body: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split what a manifest references into child manifests (of an index) and blobs (config,
    layers, artifact blobs, schema1 fsLayers); ``subject`` is a back-reference and is in neither.
    """
    document = json.loads(body)
    if document.get("schemaVersion") == 1:
        return [], [{"digest": layer["blobSum"]} for layer in document.get("fsLayers", [])]
    if "manifests" in document:
        return list(document["manifests"]), []
    blobs: list[dict[str, Any]] = []
    if "config" in document:
        blobs.append(document["config"])
    blobs.extend(document.get("layers") or [])
    blobs.extend(document.get("blobs") or [])
    return [], blobs


def pull_manifest_by_digest(client: RegistryClient, repo: str, digest: str) -> bytes:
    """Pull a manifest of ``repo`` by digest, assert it hashes to ``digest``, return its body."""
    try:
        body, header, content_type = client.get_manifest(repo, digest)
    except RegistryHTTPError as error:
        raise AssertionError(f"{repo}@{digest}: manifest does not pull: {error}") from error
    got = manifest_digest_of(body, content_type)
    if got != digest or header != digest:
        raise AssertionError(
            f"{repo}@{digest}: manifest body hashes to {got}, Docker-Content-Digest {header}"
        )
    return body


def pull_tree(client: RegistryClient, repo: str, body: bytes, where: str) -> None:
    """Fetch every child manifest and blob a manifest ``body`` references, recursively, checking
    each digest and size; ``where`` names the manifest in assertion messages.
    """
    children, blobs = manifest_children(body)
    for child in children:
        child_digest = child["digest"]
        child_body = pull_manifest_by_digest(client, repo, child_digest)
        if "size" in child and len(child_body) != child["size"]:
            raise AssertionError(
                f"{where}: child manifest {repo}@{child_digest} is {len(child_body)} bytes,"
                f" descriptor says {child['size']}"
            )
        pull_tree(client, repo, child_body, f"{where} -> {child_digest}")
    for blob in blobs:
        if blob.get("urls"):
            continue  # foreign layers live elsewhere, the registry need not hold them
        pull_blob(client, repo, blob["digest"], blob.get("size"), where)


def pull_blob(
    client: RegistryClient, repo: str, digest: str, size: int | None = None, where: str = ""
) -> bytes:
    """Pull a blob of ``repo`` and assert it hashes to ``digest`` and, when given, has ``size``
    bytes.
    """
    prefix = f"{where}: " if where else ""
    try:
        data = client.get_blob(repo, digest)
    except RegistryHTTPError as error:
        raise AssertionError(f"{prefix}blob {repo}@{digest} does not pull: {error}") from error
    got = sha256_digest(data)
    if got != digest:
        raise AssertionError(f"{prefix}blob {repo}@{digest} hashes to {got}")
    if size is not None and len(data) != size:
        raise AssertionError(
            f"{prefix}blob {repo}@{digest} is {len(data)} bytes, descriptor says {size}"
        )
    return data


def pull_image(client: RegistryClient, repo: str, tag: str, expected_digest: str) -> None:
    """Pull ``repo:tag`` with every manifest type accepted, assert it is ``expected_digest``, and
    fetch everything it references.
    """
    where = f"{repo}:{tag}"
    try:
        body, header, content_type = client.get_manifest(repo, tag)
    except RegistryHTTPError as error:
        raise AssertionError(f"{where}: manifest does not pull: {error}") from error
    got = manifest_digest_of(body, content_type)
    if got != header:
        raise AssertionError(f"{where}: body hashes to {got} but Docker-Content-Digest is {header}")
    if got != expected_digest:
        raise AssertionError(f"{where}: expected {expected_digest}, registry serves {got}")
    pull_tree(client, repo, body, f"{where}@{got}")


def pull_all(client: RegistryClient, images: Iterable[tuple[str, str, str]]) -> None:
    """Pull every ``(repo, tag, expected_digest)`` with its whole tree of manifests and blobs,
    raising AssertionError that names the first thing that failed.
    """
    for repo, tag, expected_digest in images:
        pull_image(client, repo, tag, expected_digest)


def manifest_status(client: RegistryClient, repo: str, digest: str) -> int:
    """Return the status of GET on a manifest by digest with every type accepted (200 or 404)."""
    return client.request(
        "GET",
        f"/v2/{repo}/manifests/{digest}",
        headers={"Accept": ", ".join(ALL_MANIFEST_TYPES)},
    ).status


def assert_manifest_gone(client: RegistryClient, repo: str, digest: str) -> None:
    """Assert the registry answers 404 for a manifest of ``repo`` by digest."""
    status = manifest_status(client, repo, digest)
    if status != 404:
        raise AssertionError(f"{repo}@{digest}: manifest answers {status}, expected 404")


def assert_blob_gone(client: RegistryClient, repo: str, digest: str) -> None:
    """Assert the registry answers 404 for a blob of ``repo``."""
    status = client.head_blob(repo, digest)
    if status != 404:
        raise AssertionError(f"{repo}@{digest}: blob answers {status}, expected 404")


def tagged_images(record: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Return ``(repo, tag, digest)`` for every tag a fixture record (``fixtures/<name>.json``) says
    is live.
    """
    return [(t["repo"], t["tag"], t["digest"]) for t in record["tags"]]


def load_record(path: Path) -> dict[str, Any]:
    """Read a fixture record (``fixtures/<name>.json``)."""
    return json.loads(Path(path).read_text())
