"""Hostile and broken input: each case gets a clear message or finding, never a traceback,
and never a removal outside the plan or outside the root. Live data always survives."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Callable

import pytest

from regstore import layout
from regstore.cli import main
from tests.builders import StoreBuilder, age_store

GOOD_EXITS = {0, 3, 6}
HEX = "c" * 64


class Case:
    def __init__(self, root: Path, outside: Path) -> None:
        self.root = root
        self.outside = outside
        self.b = StoreBuilder(root)
        self.live = self.b.image("app", [b"live layer", b"shared"], tag="v1")
        self.orphan = self.b.blob(b"orphan")
        self.config: Path | None = None

    def write(self, key: str, data: bytes) -> Path:
        p = self.b.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def manifest_blob(self, digest: str, data: bytes, repo: str = "app", tag: str | None = None):
        self.write(layout.blob_data(digest), data)
        self.write(layout.revision_link(repo, digest), digest.encode())
        if tag:
            self.b.tag(repo, tag, digest)


def fake(n: int) -> str:
    return "sha256:" + hashlib.sha256(str(n).encode()).hexdigest()


def live_manifest_with(c: Case, doc: object) -> None:
    c.manifest_blob(fake(1), json.dumps(doc).encode(), tag="broken")


def cfg(c: Case, text: str) -> None:
    c.config = c.root.parent / "config.yml"
    c.config.write_text(text)


CASES: dict[str, tuple[Callable[[Case], None], int, str]] = {
    # configuration
    "yaml-malformed": (lambda c: cfg(c, "storage: [unclosed\n"), 3, "YAML"),
    "yaml-not-a-mapping": (lambda c: cfg(c, "- a\n- b\n"), 3, "mapping"),
    "yaml-wrong-type-root": (lambda c: cfg(c, "version: 0.1\nstorage:\n  filesystem:\n"
                                              "    rootdirectory: 5\n"), 3, "rootdirectory"),
    "yaml-wrong-type-readonly": (lambda c: cfg(
        c, f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {c.root}\n"
           "  maintenance:\n    readonly:\n      enabled: yes-please\n"), 3, "enabled"),
    "yaml-not-utf8": (lambda c: (cfg(c, ""), c.config.write_bytes(b"\xff\xfe\x00")), 3,
                      "config"),
    "root-missing": (lambda c: cfg(c, "version: 0.1\nstorage:\n  filesystem:\n"
                                      "    rootdirectory: /nonexistent/regstore\n"), 3,
                     "does not exist"),
    "root-is-a-file": (lambda c: (cfg(c, f"version: 0.1\nstorage:\n  filesystem:\n"
                                         f"    rootdirectory: {c.outside / 'file'}\n"),
                                  (c.outside / "file").write_text("x")), 3, "not a directory"),
    "root-not-a-store": (lambda c: cfg(c, f"version: 0.1\nstorage:\n  filesystem:\n"
                                          f"    rootdirectory: {c.outside}\n"), 3,
                         "docker/registry/v2"),
    # link files
    "tag-link-empty": (lambda c: c.write(layout.tag_current_link("app", "v2"), b""), 0,
                       "bad-tag-link"),
    "tag-link-garbage": (lambda c: c.write(layout.tag_current_link("app", "v2"), b"\x00\xff"),
                         0, "bad-tag-link"),
    "tag-link-oversized": (lambda c: c.write(layout.tag_current_link("app", "v2"),
                                             b"sha256:" + b"a" * (8 << 20)), 0, "bad-tag-link"),
    "tag-link-path-like": (lambda c: c.write(layout.tag_current_link("app", "v2"),
                                             b"sha256:../../../../etc/passwd"), 0,
                           "bad-tag-link"),
    "revision-dir-not-a-digest": (lambda c: c.write(
        "repositories/app/_manifests/revisions/sha256/..x/link", b"x"), 0, "stray-entry"),
    "tag-name-invalid": (lambda c: c.b.tag("app", "v1", c.live) or os.rename(
        c.b.path(layout.tag_dir("app", "v1")), c.b.path(layout.tags_dir("app")) / "-bad"), 0,
        "invalid-tag-name"),
    # symlinks
    "symlink-repository-outside": (lambda c: os.symlink(
        c.outside, c.b.path("repositories/evil")), 6, "symlink"),
    "symlink-blob-outside": (lambda c: (c.b.path("blobs/sha256/cc").mkdir(parents=True),
                                        os.symlink(c.outside, c.b.path(f"blobs/sha256/cc/{HEX}"))),
                             0, "symlink"),
    "symlink-manifest-data": (lambda c: (
        c.write(layout.revision_link("app", fake(2)), fake(2).encode()),
        c.b.path(layout.blob_dir(fake(2))).mkdir(parents=True),
        os.symlink(c.outside / "secret", c.b.path(layout.blob_data(fake(2))))), 6,
        "symlink"),
    "symlink-tag-outside": (lambda c: os.symlink(
        c.outside, c.b.path(layout.tags_dir("app")) / "evil"), 6, "symlink"),
    "symlink-tag-current": (lambda c: (c.b.path(layout.tag_dir("app", "v9")).mkdir(),
                                       os.symlink(c.outside, c.b.path(layout.tag_dir("app", "v9"))
                                                  / "current")), 6, "symlink"),
    # shapes
    "file-where-dir-expected": (lambda c: c.write("repositories/app/_layers", b"x") if
                                not c.b.path("repositories/app/_layers").exists() else
                                (__import__("shutil").rmtree(c.b.path("repositories/app/_layers")),
                                 c.write("repositories/app/_layers", b"x")), 0, "stray-entry"),
    "blobs-prefix-is-a-file": (lambda c: c.write("blobs/sha256/zz", b"x"), 0, "stray-entry"),
    "blob-under-wrong-prefix": (lambda c: c.write(f"blobs/sha256/00/{HEX}/data", b"x"), 0,
                                "stray-entry"),
    "blob-under-short-prefix": (lambda c: c.write(f"blobs/sha256/{HEX[0]}/{HEX}/data", b"x"),
                                0, "stray-entry"),
    "repository-name-not-utf8": (lambda c: c.write(
        os.fsdecode(b"repositories/\xff\xfe/_manifests/revisions/sha256/" + HEX.encode() + b"/link"),
        b"x"), 6, "invalid-repository-name"),
    "repository-name-uppercase": (lambda c: c.write(
        f"repositories/App/_manifests/revisions/sha256/{HEX}/link", b"x"), 6,
        "invalid-repository-name"),
    # manifests
    "manifest-invalid-json": (lambda c: c.manifest_blob(fake(1), b"{nope", tag="t"), 6,
                              "invalid-manifest"),
    "manifest-empty": (lambda c: c.manifest_blob(fake(1), b"", tag="t"), 6, "invalid-manifest"),
    "manifest-wrong-shape": (lambda c: live_manifest_with(c, [1, 2, 3]), 6, "invalid-manifest"),
    "manifest-layers-not-list": (lambda c: live_manifest_with(
        c, {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": fake(9), "size": 1}, "layers": "x"}), 6, "invalid-manifest"),
    "manifest-path-like-digest": (lambda c: live_manifest_with(
        c, {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": "sha256:../../../etc", "size": 1}, "layers": []}), 6,
        "invalid-manifest"),
    "manifest-deep-nesting": (lambda c: c.manifest_blob(fake(1), b"[" * 200000 + b"]" * 200000,
                                                        tag="t"), 6, "invalid-manifest"),
    "manifest-oversized": (lambda c: c.manifest_blob(
        fake(1), b'{"schemaVersion": 2, "x": "' + b"a" * (5 << 20) + b'"}', tag="t"), 6,
        "invalid-manifest"),
    "index-self-reference": (lambda c: c.manifest_blob(fake(1), json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [{"digest": fake(1), "size": 1}, {"digest": c.live, "size": 1}]}
    ).encode(), tag="t"), 0, ""),
    "index-cycle": (lambda c: (
        c.manifest_blob(fake(1), json.dumps({"schemaVersion": 2, "manifests": [
            {"digest": fake(2), "size": 1}]}).encode(), tag="t"),
        c.manifest_blob(fake(2), json.dumps({"schemaVersion": 2, "manifests": [
            {"digest": fake(1), "size": 1}]}).encode())), 0, ""),
    "index-deep-chain": (lambda c: [c.manifest_blob(fake(i), json.dumps(
        {"schemaVersion": 2, "manifests": [{"digest": fake(i + 1) if i < 2999 else c.live,
                                            "size": 1}]}).encode(),
        tag="t" if i == 1 else None) for i in range(1, 3000)], 0, ""),
    "live-manifest-missing": (lambda c: c.write(layout.revision_link("app", fake(1)),
                                                fake(1).encode()), 6, "missing-manifest"),
}


@pytest.fixture
def case_dirs(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("precious")
    return root, outside


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input(name, case_dirs):
    setup, expected, words = CASES[name]
    root, outside = case_dirs
    c = Case(root, outside)
    setup(c)
    age_store(root)
    live = [c.live] + [d for d in json.loads(c.b.path(layout.blob_data(c.live)).read_bytes())
                       and _references(c)]
    target = ["--force", str(c.config)] if c.config else ["--force", "--root", str(root)]
    results = {}
    for mode in (["--dry-run"], []):
        out, err = io.StringIO(), io.StringIO()
        code = main(["gc", "--json", "--min-age", "0", "--max-delete-fraction", "1", *mode,
                     *target], out=out, err=err)
        assert "Traceback" not in err.getvalue()
        assert code == expected, err.getvalue()
        report = json.loads(out.getvalue())
        results[bool(mode)] = report
        text = err.getvalue() + json.dumps(report)
        assert words in text
        for line in err.getvalue().splitlines():
            assert len(line) < 2000 or "bad-tag-link" in line
    dry, real = results[True], results[False]
    planned = {i["path"] for i in dry.get("items", [])}
    assert {i["path"] for i in real.get("items", [])} <= planned
    if expected != 0:
        assert real.get("summary", {}).get("removed", 0) == 0
    for digest in live:
        assert c.b.path(layout.blob_data(digest)).exists(), f"live blob {digest} went"
    assert (outside / "secret").read_text() == "precious"


def _references(c: Case) -> list[str]:
    doc = json.loads(c.b.path(layout.blob_data(c.live)).read_bytes())
    return [doc["config"]["digest"]] + [d["digest"] for d in doc["layers"]]


def test_the_corpus_has_at_least_25_cases():
    assert len(CASES) >= 25


def test_unreadable_subtree_stops_the_sweep(tmp_path, monkeypatch):
    # Running as root, permissions cannot deny a read: the listing is made to fail the way
    # a denied directory does.
    b = StoreBuilder(tmp_path / "root")
    b.image("app", [b"x"], tag="v1")
    b.blob(b"orphan")
    age_store(b.root)
    denied = str(b.path("repositories/app/_manifests/revisions"))

    def deny(listing):
        def denied_listing(path="."):
            if str(path).startswith(denied):
                raise PermissionError(13, "Permission denied", str(path))
            return listing(path)
        return denied_listing

    # Either call lists a directory (list_dir takes the names alone where it can).
    monkeypatch.setattr(os, "scandir", deny(os.scandir))
    monkeypatch.setattr(os, "listdir", deny(os.listdir))
    out, err = io.StringIO(), io.StringIO()
    code = main(["gc", "--force", "--min-age", "0", "--root", str(b.root)], out=out, err=err)
    assert code == 6
    assert "cannot list: Permission denied" in err.getvalue()
    assert "nothing was swept" in err.getvalue()
