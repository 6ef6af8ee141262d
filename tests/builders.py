"""Small stores in a line or two, laid out exactly as the registry writes them.

These are for unit tests of single rules; fixtures/ holds stores the real registry wrote.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from regstore import layout
from regstore.manifest import DOCKER_LIST, OCI_INDEX, OCI_MANIFEST, SCHEMA2


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class StoreBuilder:
    """Writes blobs, links, manifests and tags under ``root/docker/registry/v2``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.v2 = self.root / layout.V2_PREFIX
        (self.v2 / "blobs").mkdir(parents=True, exist_ok=True)
        (self.v2 / "repositories").mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.v2 / key

    def _write(self, key: str, data: bytes) -> None:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    def blob(self, data: bytes) -> str:
        digest = sha256(data)
        self._write(layout.blob_data(digest), data)
        return digest

    def link_layer(self, repo: str, digest: str) -> None:
        self._write(layout.layer_link(repo, digest), digest.encode())

    def layer(self, repo: str, data: bytes) -> str:
        """A blob pushed into ``repo``: the blob and its _layers link."""
        digest = self.blob(data)
        self.link_layer(repo, digest)
        return digest

    def manifest(self, repo: str, doc: dict[str, Any], tag: str | None = None) -> str:
        """Store ``doc`` as a manifest revision of ``repo`` and optionally tag it."""
        data = json.dumps(doc, indent=3).encode()
        digest = self.blob(data)
        self._write(layout.revision_link(repo, digest), digest.encode())
        if tag:
            self.tag(repo, tag, digest)
        return digest

    def tag(self, repo: str, tag: str, digest: str) -> None:
        self._write(layout.tag_current_link(repo, tag), digest.encode())
        self._write(layout.tag_index_entry_dir(repo, tag, digest) + "/link", digest.encode())

    def image(self, repo: str, layers: list[bytes], tag: str | None = None,
              media_type: str = SCHEMA2, subject: str | None = None,
              config: bytes | None = None) -> str:
        """Push an image: config and layers as blobs linked into ``repo``, then the manifest."""
        config = config if config is not None else json.dumps(
            {"architecture": "amd64", "os": "linux", "layers": len(layers),
             "id": sha256(b"".join(layers))}).encode()
        cfg = self.layer(repo, config)
        descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                  "digest": self.layer(repo, d), "size": len(d)} for d in layers]
        doc: dict[str, Any] = {
            "schemaVersion": 2, "mediaType": media_type,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg,
                       "size": len(config)},
            "layers": descs}
        if subject:
            doc["subject"] = self.descriptor(subject)
        return self.manifest(repo, doc, tag)

    def descriptor(self, digest: str, media_type: str = OCI_MANIFEST) -> dict[str, Any]:
        size = self.path(layout.blob_data(digest)).stat().st_size
        return {"mediaType": media_type, "digest": digest, "size": size}

    def index(self, repo: str, children: list[str], tag: str | None = None,
              media_type: str = OCI_INDEX, subject: str | None = None) -> str:
        child_type = SCHEMA2 if media_type == DOCKER_LIST else OCI_MANIFEST
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type,
                               "manifests": [self.descriptor(c, child_type) for c in children]}
        if subject:
            doc["subject"] = self.descriptor(subject)
        return self.manifest(repo, doc, tag)


def build_store(root: Path, spec: dict[str, dict[str, list[bytes]]]) -> tuple[StoreBuilder,
                                                                              dict[str, str]]:
    """``build_store(tmp, {"app": {"v1": [b"layer a", b"layer b"]}})``: one image per tag.

    Returns the builder and ``{"app:v1": manifest digest}``.
    """
    b = StoreBuilder(root)
    digests = {}
    for repo, tags in spec.items():
        for tag, layers in tags.items():
            digests[f"{repo}:{tag}"] = b.image(repo, layers, tag=tag)
    return b, digests


def age_store(root: Path, seconds: float = 2 * 86400) -> None:
    """Set every mtime below ``root`` to ``seconds`` ago, as in a store written long before a
    gc runs (fixtures copied from a fresh checkout are all brand new)."""
    import os
    import time

    then = time.time() - seconds
    for dirpath, dirnames, filenames in os.walk(root):
        if "startedat" in filenames:  # an upload records its start time as text too
            started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(then))
            Path(dirpath, "startedat").write_text(started)
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (then, then), follow_symlinks=False)
