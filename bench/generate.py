"""Write a synthetic registry store straight to disk, laid out exactly as the registry writes it.

Benchmarks need stores of 10k to 1M blobs; pushing that many through the registry's API would
take hours, so this writes the files itself: ``blobs/sha256/<xx>/<hex>/data``, and per
repository ``_layers/sha256/<hex>/link``, ``_manifests/revisions/sha256/<hex>/link`` and
``_manifests/tags/<tag>/{current/link,index/sha256/<hex>/link}``, each link holding the digest
without a newline, as in ``fixtures/mixed`` (which the registry wrote). The store holds what real
ones hold: nested repository names, base layers shared by images and repositories, images copied
between repositories, overwritten tags (the old manifests stay as untagged revisions, still in
the tag's index), manifests pushed by digest, docker manifest lists and OCI indexes (nested too)
with untagged children, OCI referrers with a ``subject``, cosign-style ``.sig`` tags, manifests
deleted through the API (their revision directory stays, empty), orphan blobs with and without a
``_layers`` link, and abandoned uploads. Every blob's sha256 is its digest; the same seed, size
and layer size give the same store, byte for byte. Tags per repository have the long tail of
real registries: a few CI repositories hold hundreds of builds, which is what makes the
registry's ``-m`` slow.

Next to ``docker/`` it writes ``bench-store.json`` (what was generated: counts, bytes, tagged
images, what a GC without ``-m`` should find) and ``config.yml`` (a read-only registry config
for the store). Usage: ``python -m bench.generate --blobs 100000 --out DIR``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import random
import struct
import sys
import tempfile
import time
import uuid
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

FORMAT = 1
RECORD_NAME = "bench-store.json"
CONFIG_NAME = "config.yml"
V2_PREFIX = "docker/registry/v2"
DEFAULT_AVG_LAYER_SIZE = 4096
MIN_BLOBS = 200  # below this the store cannot hold one of every feature
# The most blobs one repository can add after the budget check (a nested index with three
# platforms, two earlier builds, referrers, untagged and deleted images, orphans): checking
# against it keeps the blob count exact.
REPO_COST_MAX = 110
CI_SHARE = 0.01  # repositories with 50-300 tags, CI builds
MANY_TAGS_SHARE = 0.10  # repositories with 10-40 tags

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
SBOM_TYPE = "application/spdx+json"
SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"

# Layer sizes are log-normal around the requested mean, as real layer sizes are: many small,
# a few large. The cap keeps the shared random buffer small.
SIZE_SIGMA = 1.0
SIZE_CAP_FACTOR = 32
MIN_LAYER_SIZE = 128
BUFFER_MIN = 16 * 1024 * 1024

# Disk use of a generated store, measured on ext4 with 4 KiB blocks (bench/README.md): every
# blob and link is a directory plus a file of at least one block.
DISK_BYTES_PER_BLOB = 26_000
INODES_PER_BLOB = 8.0

ARCHES = ("amd64", "arm64", "arm", "ppc64le", "s390x")
WORDS = ("api", "web", "worker", "db", "cache", "proxy", "auth", "billing", "search", "etl",
         "gateway", "cron", "metrics", "web.front", "data_loader", "build__tools", "ml-serving")
EPOCH = 1704067200  # 2024-01-01T00:00:00Z: timestamps inside blobs are fixed, not "now"


@dataclass(eq=False, slots=True)
class Node:
    """One manifest to generate: an image, an index (list), a referrer or a cosign signature."""

    kind: str  # image | index | referrer | cosign
    flavor: str  # docker | oci | oci-bare (images and indexes)
    ident: int  # makes its config (or payload) unique
    layers: list[int] = field(default_factory=list)  # layer numbers, images only
    children: list[tuple[Node, str]] = field(default_factory=list)  # (child, architecture)
    subject: Node | None = None
    digest: str = ""
    size: int = 0
    media_type: str = ""
    blobs: list[str] = field(default_factory=list)  # config, layers, payload digests


@dataclass(slots=True)
class Tag:
    """A tag and every manifest it pointed at, oldest first; ``signs`` names the cosign subject."""

    name: str
    history: list[Node]
    signs: Node | None = None


@dataclass(slots=True)
class Repo:
    """One repository: its tags, what was pushed by digest, deleted manifests, orphans, uploads."""

    name: str
    tags: list[Tag] = field(default_factory=list)
    by_digest: list[Node] = field(default_factory=list)
    deleted: list[Node] = field(default_factory=list)
    orphans: list[int] = field(default_factory=list)
    uploads: list[bytes] = field(default_factory=list)


def go_sha256_state(data: bytes) -> bytes:
    """The registry's saved sha256 state after ``data`` (Go's ``MarshalBinary``), for uploads.

    The registry stores it as ``hashstates/sha256/<offset>`` so an upload can resume; hashlib
    does not expose its state, so the few compressions are done here (``data`` is small).
    """
    k = _SHA256_K
    mask = 0xFFFFFFFF
    h = list(_SHA256_IV)
    full = len(data) // 64 * 64
    for start in range(0, full, 64):
        w = list(struct.unpack(">16I", data[start:start + 64]))
        for i in range(16, 64):
            a, b = w[i - 15], w[i - 2]
            s0 = _rotr(a, 7) ^ _rotr(a, 18) ^ (a >> 3)
            s1 = _rotr(b, 17) ^ _rotr(b, 19) ^ (b >> 10)
            w.append((w[i - 16] + s0 + w[i - 7] + s1) & mask)
        a, b, c, d, e, f, g, hh = h
        for i in range(64):
            t1 = (hh + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + ((e & f) ^ (~e & g))
                  + k[i] + w[i]) & mask
            t2 = ((_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22))
                  + ((a & b) ^ (a & c) ^ (b & c))) & mask
            hh, g, f, e, d, c, b, a = g, f, e, (d + t1) & mask, c, b, a, (t1 + t2) & mask
        h = [(x + y) & mask for x, y in zip(h, (a, b, c, d, e, f, g, hh))]
    rest = data[full:]
    return (b"sha\x03" + struct.pack(">8I", *h) + rest.ljust(64, b"\0")
            + struct.pack(">Q", len(data)))


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & 0xFFFFFFFF


_SHA256_IV = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
              0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)
_SHA256_K = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
)


# --- planning: what the store holds, with layers as numbers ---------------------------------


class Planner:
    """Decides, from a seed, every repository, tag, manifest and layer size of the store.

    Nothing is hashed or written here; layers are numbers into ``sizes``. Each feature of a real
    store is forced the first time it can occur, so even a store of a few hundred blobs holds
    one of each; after that it occurs with a realistic probability.
    """

    def __init__(self, blobs: int, seed: int, avg_layer_size: int) -> None:
        self.rng = random.Random(seed)
        self.target = blobs
        self.sizes = array("Q")
        self.json_blobs = 0  # configs, manifests, referrer payloads, the empty blob
        self.mu = math.log(avg_layer_size) - SIZE_SIGMA ** 2 / 2
        self.cap = max(MIN_LAYER_SIZE * 2, avg_layer_size * SIZE_CAP_FACTOR)
        self.idents = itertools.count(1)
        self.seen: set[str] = set()
        self.repos: list[Repo] = []
        self.bases: list[list[int]] = []
        self.copyable: list[tuple[str, Node]] = []  # tagged manifests other repos may copy
        self.unlinked: list[int] = []
        self.empty_blob = False
        # Blobs kept back for orphans without a link, so every store has some at any size.
        self.reserve = 10 + max(2, blobs // 2000)

    @property
    def used(self) -> int:
        return len(self.sizes) + self.json_blobs

    def want(self, feature: str, p: float) -> bool:
        """Whether to add ``feature`` here: always the first time, then with probability p."""
        if feature not in self.seen:
            self.seen.add(feature)
            return True
        return self.rng.random() < p

    def layer(self) -> int:
        """A new layer of a log-normal size; its number."""
        size = int(self.rng.lognormvariate(self.mu, SIZE_SIGMA))
        self.sizes.append(min(self.cap, max(MIN_LAYER_SIZE, size)))
        return len(self.sizes) - 1

    def plan(self) -> None:
        """Plan the whole store: bases, repositories until the budget is spent, orphans."""
        for _ in range(max(4, self.target // 500)):
            self.bases.append([self.layer() for _ in range(self.rng.randint(2, 4))])
        names: list[str] = []
        while self.target - self.used > self.reserve + REPO_COST_MAX:
            self.repos.append(self.repository(len(self.repos), names))
        for i in self.rng.sample(range(len(self.repos)), min(len(self.repos),
                                                               max(2, self.target // 50_000))):
            self.repos[i].uploads.append(self.rng.randbytes(512 * self.rng.randint(1, 8)))
        # What is left is orphans: a third linked into some repository (uploaded, never
        # referenced), the rest with no link at all (a repository removed by hand).
        left = self.target - self.used
        if left < 0:
            raise AssertionError(f"planned {-left} blobs too many: raise REPO_COST_MAX")
        for n in range(left):
            if n % 3 == 0:
                self.rng.choice(self.repos).orphans.append(self.layer())
            else:
                self.unlinked.append(self.layer())

    def repository(self, number: int, names: list[str]) -> Repo:
        """One repository with its tags, pushes by digest, deletions and orphans."""
        word = self.rng.choice(WORDS)
        if self.want("nested-name", 0.5):
            team = f"team-{self.rng.randint(1, 1 + number // 20)}"
            if self.want("deep-name", 0.35):
                name = f"{team}/{self.rng.choice(WORDS)}/{word}-{number}"
            else:
                name = f"{team}/{word}-{number}"
        else:
            name = f"{word}-{number}"
        if names and self.want("repo-below-repo", 0.02):
            # The registry allows a repository below another one (app and app/debug).
            name = f"{self.rng.choice(names)}/sub-{number}"
        names.append(name)
        repo = Repo(name)
        # Tags per repository have a long tail: most repositories hold a few releases, some
        # dozens, and CI repositories hundreds of builds (main-<sha>, pr-<n>) with a `latest`
        # overwritten at every merge. The registry's -m reads every tag for every revision of
        # a repository, so the tail is what makes it slow (distribution#1950).
        deps: list[int] = []
        roll = self.rng.random()
        if number >= 3 and roll < CI_SHARE:
            deps = [self.layer() for _ in range(2)]  # dependencies every build shares
            count = self.rng.randint(50, 300)
        elif roll < CI_SHARE + MANY_TAGS_SHARE:
            count = self.rng.randint(10, 40)
        else:
            count = self.rng.choice((1, 2, 3, 3, 4, 4, 5, 6, 8))
        for tag_name in self.tag_names(count):
            if self.target - self.used <= self.reserve + REPO_COST_MAX and repo.tags:
                break
            if deps:
                self.ci_tag(repo, tag_name, deps)
                continue
            current = self.tagged_manifest(repo)
            history = [current]
            if self.want("overwritten-tag", 0.3):
                # Earlier builds under the same tag: they stay as untagged revisions.
                history[:0] = [self.image(current.flavor if current.kind == "image" else "docker")
                               for _ in range(self.rng.choice((1, 1, 2)))]
            repo.tags.append(Tag(tag_name, history))
            self.copyable.append((name, current))
            signed = any(t.signs is current for t in repo.tags)  # one .sig tag per manifest
            if current.kind == "image" and not signed and self.want("cosign-signature", 0.03):
                sig = Node("cosign", "oci", next(self.idents))
                self.json_blobs += 3  # manifest, config, payload
                repo.tags.append(Tag("", [sig], signs=current))
            if self.want("referrer", 0.12):
                for _ in range(self.rng.choice((1, 1, 2))):
                    repo.by_digest.append(self.referrer(current))
        if self.want("untagged", 0.15):
            for _ in range(self.rng.choice((1, 2))):
                image = self.image(self.rng.choice(("docker", "oci")))
                repo.by_digest.append(image)
                if self.want("referrer-of-untagged", 0.1):
                    repo.by_digest.append(self.referrer(image))
        if self.want("deleted", 0.05):
            # Pushed, tagged, then DELETEd by digest: the tag goes, the revision directory
            # stays empty, the blobs stay.
            gone = self.image("docker")
            repo.deleted.append(gone)
            if self.want("referrer-of-deleted", 0.3):
                repo.by_digest.append(self.referrer(gone))
        if self.want("orphan-linked", 0.08):
            repo.orphans.extend(self.layer() for _ in range(self.rng.randint(1, 3)))
        return repo

    def ci_tag(self, repo: Repo, tag_name: str, deps: list[int]) -> None:
        """One CI build: the base, the shared dependencies, one or two layers of its own. The
        first tag (``latest`` or whatever comes first) is overwritten by many builds."""
        history = [self.image("docker", deps, (1, 1, 2))]
        if not repo.tags:
            earlier = self.rng.randint(10, 60)
            room = (self.target - self.used - self.reserve - REPO_COST_MAX) // 4
            history[:0] = [self.image("docker", deps, (1, 1, 2))
                           for _ in range(max(0, min(earlier, room)))]
        repo.tags.append(Tag(tag_name, history))

    def tag_names(self, count: int) -> list[str]:
        """``count`` distinct tag names of the kinds people use."""
        names: list[str] = []
        if self.rng.random() < 0.6:
            names.append("latest")
        while len(names) < count:
            style = self.rng.randrange(5)
            if style == 0:
                major, minor, patch = (self.rng.randint(0, n) for n in (3, 20, 9))
                name = f"v{major}.{minor}.{patch}"
            elif style == 1:
                name = f"main-{self.rng.getrandbits(28):07x}"
            elif style == 2:
                name = f"2024.{self.rng.randint(1, 12):02d}.{self.rng.randint(1, 28):02d}"
            elif style == 3:
                name = self.rng.choice(("stable", "dev", "edge", "1.0", "slim", "alpine"))
            else:
                name = f"pr-{self.rng.randint(1, 9999)}_build"
            if name not in names:
                names.append(name)
        return names

    def tagged_manifest(self, repo: Repo) -> Node:
        """What a tag of ``repo`` points at: an image, an index, or a copy from elsewhere."""
        if self.copyable and self.copyable[0][0] != repo.name \
                and self.want("copied-between-repos", 0.04):
            # Any earlier repository's tagged manifest; only this repository's own are left out.
            while True:
                origin, node = self.rng.choice(self.copyable)
                if origin != repo.name:
                    return node
        if self.want("docker-list", 0.10):
            return self.index("docker", self.rng.randint(2, 3))
        if self.want("oci-index", 0.08):
            flavor = "oci-bare" if self.want("bare-index", 0.05) else "oci"
            return self.index(flavor, self.rng.randint(2, 3),
                              nested=self.want("nested-index", 0.25))
        if self.want("oci-bare-image", 0.02):
            return self.image("oci-bare")
        return self.image("docker" if self.rng.random() < 0.55 else "oci")

    def image(self, flavor: str, shared: Sequence[int] = (),
              own_layers: Sequence[int] = (1, 1, 2, 2, 3, 3, 4, 5, 6)) -> Node:
        """An image on a popular base, with ``shared`` layers and some of its own."""
        base = self.bases[min(len(self.bases) - 1,
                              int(len(self.bases) * self.rng.random() ** 2))]
        own = list(shared) + [self.layer() for _ in range(self.rng.choice(own_layers))]
        self.json_blobs += 2  # config and manifest
        return Node("image", flavor, next(self.idents), layers=base + own)

    def index(self, flavor: str, platforms: int, nested: bool = False) -> Node:
        """A multi-platform index whose children are pushed by digest (untagged)."""
        child_flavor = "docker" if flavor == "docker" else "oci"
        arches = self.rng.sample(ARCHES, platforms)
        children = [(self.image(child_flavor), arch) for arch in arches]
        if nested:
            children.append((self.index("oci", 2), ""))
        self.json_blobs += 1
        return Node("index", flavor, next(self.idents), children=children)

    def referrer(self, subject: Node) -> Node:
        """A referrer of ``subject``, pushed by digest as OCI 1.1 clients do."""
        if not self.empty_blob:
            self.empty_blob = True
            self.json_blobs += 1
        self.json_blobs += 2  # manifest and payload
        return Node("referrer", "oci", next(self.idents), subject=subject)


# --- writing: pool workers share the random buffer layers are cut from ----------------------

_BUFFER = b""
_SEED = 0
_V2 = ""
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


_RANDBYTES_MAX = 1 << 27


def _init_worker(v2: str, seed: int, buffer_size: int) -> None:
    global _BUFFER, _SEED, _V2
    _V2, _SEED = v2, seed
    rng = random.Random(seed)
    if buffer_size <= _RANDBYTES_MAX:
        _BUFFER = rng.randbytes(buffer_size)
    else:  # randbytes takes at most 2**31 bits at a time
        _BUFFER = b"".join(rng.randbytes(min(_RANDBYTES_MAX, buffer_size - start))
                           for start in range(0, buffer_size, _RANDBYTES_MAX))


def _write_file(path: str, parts: Sequence[bytes | memoryview], when: float) -> None:
    fd = os.open(path, _FILE_FLAGS, 0o644)
    try:
        total = sum(len(p) for p in parts)
        written = os.writev(fd, parts)
        if written < total:  # a short write: rare, finish it piece by piece
            rest = memoryview(b"".join(bytes(p) for p in parts))[written:]
            while rest:
                rest = rest[os.write(fd, rest):]
        os.utime(fd, (when, when))
    finally:
        os.close(fd)


def pushed_at(number: int) -> float:
    """A fixed time in the 300 days after 2024-01-01 for item ``number``.

    A real store's files were written long ago; a store dated "now" would sit entirely inside
    any grace period a collector has, and nothing would ever be eligible.
    """
    return float(EPOCH + (number * 7919) % (300 * 86400))


def _layer_content(number: int, size: int) -> tuple[bytes, memoryview]:
    # A unique header makes every layer distinct; the rest is cut from the shared random
    # buffer (layers are compressed, so random bytes are what real ones look like).
    head = b"regstore-bench layer %d %d\n" % (_SEED, number)
    n = size - len(head)
    offset = ((number + 1) * 0x9E3779B97F4A7C15 + _SEED) % (len(_BUFFER) - n)
    return head, memoryview(_BUFFER)[offset:offset + n]


def _write_layers(task: tuple[int, array]) -> tuple[list[str], int, int]:
    start, sizes = task
    hexes = []
    blobs = f"{_V2}/blobs/sha256"
    for number, size in enumerate(sizes, start):
        head, body = _layer_content(number, size)
        h = hashlib.sha256(head)
        h.update(body)
        hex_ = h.hexdigest()
        directory = f"{blobs}/{hex_[:2]}/{hex_}"
        when = pushed_at(number)
        os.mkdir(directory, 0o755)
        _write_file(f"{directory}/data", (head, body), when)
        os.utime(directory, (when, when))
        hexes.append(hex_)
    return hexes, len(sizes), len(sizes)


def _write_blobs(items: list[tuple[str, bytes, float]]) -> tuple[int, int]:
    blobs = f"{_V2}/blobs/sha256"
    for hex_, data, when in items:
        directory = f"{blobs}/{hex_[:2]}/{hex_}"
        os.mkdir(directory, 0o755)
        _write_file(f"{directory}/data", (data,), when)
        os.utime(directory, (when, when))
    return len(items), len(items)


@dataclass(slots=True)
class RepoFiles:
    """Everything written under one repository, as digests' hex (all sha256)."""

    name: str
    when: float  # the time its files carry
    layers: list[str]
    revisions: list[str]
    deleted: list[str]
    tags: list[tuple[str, list[str]]]  # (tag, history oldest first: the last is current)
    uploads: list[tuple[str, bytes, str, float]]  # (uuid, data, startedat, its time)


class _Dirs:
    """Creates directories and remembers them, to date them once their entries exist."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def mkdir(self, path: str) -> None:
        os.mkdir(path, 0o755)
        self.made.append(path)

    def makedirs(self, path: str, below: str) -> None:
        # Only the components under ``below`` are ours; the repository name's own directories
        # may be shared with another repository another worker is writing.
        current = below
        for part in path[len(below) + 1:].split("/"):
            current = f"{current}/{part}"
            try:
                os.mkdir(current, 0o755)
            except FileExistsError:
                continue
            self.made.append(current)

    def date(self, when: float) -> int:
        for path in self.made:
            os.utime(path, (when, when))
        return len(self.made)


def _write_repos(repos: list[RepoFiles]) -> tuple[int, int]:
    files = dirs = 0
    for r in repos:
        base = f"{_V2}/repositories/{r.name}"
        os.makedirs(base, 0o755, exist_ok=True)
        made = _Dirs()
        when = r.when
        for part in ("_layers/sha256", "_manifests/revisions/sha256", "_manifests/tags",
                     # The registry leaves _uploads behind, empty, in every repository it
                     # received a blob in.
                     "_uploads"):
            made.makedirs(f"{base}/{part}", base)
        for top, hexes in ((f"{base}/_layers/sha256", r.layers),
                           (f"{base}/_manifests/revisions/sha256", r.revisions)):
            for hex_ in hexes:
                made.mkdir(f"{top}/{hex_}")
                _write_file(f"{top}/{hex_}/link", (b"sha256:" + hex_.encode(),), when)
            files += len(hexes)
        for hex_ in r.deleted:
            # DELETE of a manifest removes the revision's link file and leaves its directory.
            made.mkdir(f"{base}/_manifests/revisions/sha256/{hex_}")
        for tag, history in r.tags:
            top = f"{base}/_manifests/tags/{tag}"
            made.makedirs(f"{top}/current", base)
            made.makedirs(f"{top}/index/sha256", base)
            _write_file(f"{top}/current/link", (b"sha256:" + history[-1].encode(),), when)
            files += 1
            for hex_ in dict.fromkeys(history):
                made.mkdir(f"{top}/index/sha256/{hex_}")
                _write_file(f"{top}/index/sha256/{hex_}/link", (b"sha256:" + hex_.encode(),),
                            when)
                files += 1
        for upload_id, data, started, upload_when in r.uploads:
            top = f"{base}/_uploads/{upload_id}"
            made.makedirs(f"{top}/hashstates/sha256", base)
            _write_file(f"{top}/data", (data,), upload_when)
            _write_file(f"{top}/startedat", (started.encode(),), upload_when)
            _write_file(f"{top}/hashstates/sha256/0", (go_sha256_state(b""),), upload_when)
            _write_file(f"{top}/hashstates/sha256/{len(data)}", (go_sha256_state(data),),
                        upload_when)
            files += 4
        dirs += made.date(when)
    return files, dirs


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --- building manifests ---------------------------------------------------------------------


class Builder:
    """Turns planned nodes into manifest and config bytes once their layers have digests."""

    def __init__(self, layer_hexes: list[str], sizes: array, seed: int) -> None:
        self.layer_hexes = layer_hexes
        self.sizes = sizes
        self.blobs: list[tuple[str, bytes, float]] = []
        self.blob_bytes = 0
        self.empty_digest = ""

    def emit(self, data: bytes) -> str:
        """Queue ``data`` as a blob to write and return its hex digest."""
        hex_ = hashlib.sha256(data).hexdigest()
        self.blobs.append((hex_, data, pushed_at(len(self.layer_hexes) + len(self.blobs))))
        self.blob_bytes += len(data)
        return hex_

    def build(self, node: Node) -> None:
        """Give ``node`` (and what it references) bytes and a digest, once."""
        if node.digest:
            return
        if node.kind == "image":
            body = self.image(node)
        elif node.kind == "index":
            body = self.index(node)
        elif node.kind == "referrer":
            body = self.referrer(node)
        else:
            raise AssertionError(f"a {node.kind} is built from its tag")
        node.digest = "sha256:" + self.emit(body)
        node.size = len(body)

    def _layer(self, number: int, media_type: str) -> dict[str, Any]:
        digest = "sha256:" + self.layer_hexes[number]
        return {"mediaType": media_type, "size": self.sizes[number], "digest": digest}

    def _created(self, ident: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(EPOCH + ident * 37))

    def image(self, node: Node, arch: str = "amd64") -> bytes:
        """The manifest of an image, after queueing its config."""
        docker = node.flavor == "docker"
        created = self._created(node.ident)
        layers = [self._layer(n, DOCKER_LAYER if docker else OCI_LAYER) for n in node.layers]
        diff_ids = ["sha256:" + hashlib.sha256(d["digest"].encode()).hexdigest() for d in layers]
        config = json.dumps({
            "architecture": arch, "os": "linux", "created": created,
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                       "Cmd": ["/app"], "WorkingDir": "/srv",
                       "Labels": {"org.opencontainers.image.revision": f"{node.ident:040x}"}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": created, "created_by": f"/bin/sh -c #(nop) step {i}"}
                        for i in range(len(layers))],
        }, separators=(",", ":")).encode()
        config_digest = "sha256:" + self.emit(config)
        node.blobs = [config_digest] + [d["digest"] for d in layers]
        manifest: dict[str, Any] = {"schemaVersion": 2}
        if docker:
            node.media_type = SCHEMA2
            manifest["mediaType"] = SCHEMA2
        elif node.flavor == "oci":
            node.media_type = OCI_MANIFEST
            manifest["mediaType"] = OCI_MANIFEST
        else:
            node.media_type = OCI_MANIFEST  # OCI makes mediaType optional
        manifest["config"] = {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                              "size": len(config), "digest": config_digest}
        manifest["layers"] = layers
        if docker:
            return json.dumps(manifest, indent=3).encode()  # what docker push writes
        return json.dumps(manifest, separators=(",", ":")).encode()

    def index(self, node: Node) -> bytes:
        """A docker manifest list or OCI index, after building its children."""
        entries = []
        for child, arch in node.children:
            if child.kind == "image":
                if not child.digest:
                    body = self.image(child, arch)
                    child.digest = "sha256:" + self.emit(body)
                    child.size = len(body)
                entry = {"mediaType": child.media_type, "size": child.size, "digest": child.digest,
                         "platform": {"architecture": arch, "os": "linux"}}
                if arch == "arm":
                    entry["platform"]["variant"] = "v7"
            else:
                self.build(child)
                entry = {"mediaType": child.media_type, "size": child.size, "digest": child.digest}
            entries.append(entry)
        if node.flavor == "docker":
            node.media_type = DOCKER_LIST
            return json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST,
                               "manifests": entries}, indent=3).encode()
        node.media_type = OCI_INDEX
        doc: dict[str, Any] = {"schemaVersion": 2}
        if node.flavor == "oci":
            doc["mediaType"] = OCI_INDEX
        doc["manifests"] = entries
        return json.dumps(doc, separators=(",", ":")).encode()

    def empty(self) -> str:
        """The digest of the empty JSON ``{}`` config referrers use, written once."""
        if not self.empty_digest:
            self.empty_digest = "sha256:" + self.emit(EMPTY_JSON)
        return self.empty_digest

    def referrer(self, node: Node) -> bytes:
        """An OCI 1.1 referrer of ``node.subject``: an SBOM or a signature, empty config."""
        subject = node.subject
        assert subject is not None
        self.build(subject)
        sbom = node.ident % 2 == 0
        artifact = SBOM_TYPE if sbom else SIGNATURE_TYPE
        if sbom:
            payload = json.dumps({
                "spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT",
                "name": f"sbom-{node.ident}",
                "creationInfo": {"created": self._created(node.ident)},
                "packages": [{"name": f"pkg-{i}", "versionInfo": f"1.{i}.{node.ident % 97}"}
                             for i in range(1 + node.ident % 12)]}).encode()
        else:
            payload = self._simplesigning(subject.digest, node.ident)
        payload_digest = "sha256:" + self.emit(payload)
        empty = self.empty()
        node.blobs = [empty, payload_digest]
        node.media_type = OCI_MANIFEST
        return json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact,
            "config": {"mediaType": OCI_EMPTY, "size": len(EMPTY_JSON), "digest": empty},
            "layers": [{"mediaType": artifact, "size": len(payload), "digest": payload_digest}],
            "subject": {"mediaType": subject.media_type, "size": subject.size,
                        "digest": subject.digest},
            "annotations": {"org.opencontainers.image.created": self._created(node.ident)},
        }, separators=(",", ":")).encode()

    def _simplesigning(self, digest: str, ident: int) -> bytes:
        return json.dumps({"critical": {"identity": {"docker-reference": "registry.example"},
                                        "image": {"docker-manifest-digest": digest},
                                        "type": "cosign container image signature"},
                           "optional": {"nonce": f"{ident:016x}"}}).encode()

    def cosign(self, node: Node, signed: Node) -> None:
        """A cosign signature stored the old way: tagged ``sha256-<hex>.sig``, no subject."""
        payload = self._simplesigning(signed.digest, node.ident)
        payload_digest = "sha256:" + self.emit(payload)
        config = json.dumps({"architecture": "", "os": "", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": [
                                 "sha256:" + hashlib.sha256(payload).hexdigest()]}},
                            separators=(",", ":")).encode()
        config_digest = "sha256:" + self.emit(config)
        node.blobs = [config_digest, payload_digest]
        node.media_type = OCI_MANIFEST
        body = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": config_digest},
            "layers": [{"mediaType": SIMPLESIGNING, "size": len(payload), "digest": payload_digest,
                        "annotations": {
                            "dev.cosignproject.cosign/signature": f"MEUC{node.ident:x}"}}],
        }, separators=(",", ":")).encode()
        node.digest = "sha256:" + self.emit(body)
        node.size = len(body)


def _revisions(repo: Repo) -> list[Node]:
    """Every manifest with a revision link in ``repo``: tagged, earlier, by digest, children."""
    seen: dict[int, Node] = {}
    stack = [n for t in repo.tags for n in t.history] + list(repo.by_digest)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        stack.extend(child for child, _ in node.children)
    return list(seen.values())


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


# --- the whole run --------------------------------------------------------------------------


def estimate(blobs: int, avg_layer_size: int = DEFAULT_AVG_LAYER_SIZE) -> tuple[int, int]:
    """Rough disk bytes and inodes a store of ``blobs`` blobs takes (checked in bench/README.md)."""
    layers_share = 0.6  # the rest are configs, manifests and payloads of about 1 KiB
    per_blob = DISK_BYTES_PER_BLOB + layers_share * max(0, avg_layer_size - DEFAULT_AVG_LAYER_SIZE)
    return int(blobs * per_blob), int(blobs * INODES_PER_BLOB)


def generate(root: Path, blobs: int, seed: int = 1, avg_layer_size: int = DEFAULT_AVG_LAYER_SIZE,
             jobs: int | None = None,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write a store of exactly ``blobs`` blobs under ``root`` (which must hold no ``docker/``),
    with ``bench-store.json`` and ``config.yml`` next to ``docker/``, and return the record.

    ``jobs`` processes write in parallel (default: one per CPU); ``progress`` receives one line
    per phase. The same ``blobs``, ``seed`` and ``avg_layer_size`` give the same store.
    """
    say = progress or (lambda line: None)
    if blobs < MIN_BLOBS:
        raise ValueError(f"need at least {MIN_BLOBS} blobs to hold one of every feature")
    if avg_layer_size < MIN_LAYER_SIZE:
        raise ValueError(f"the average layer size must be at least {MIN_LAYER_SIZE} bytes")
    root = Path(root).resolve()
    v2 = root / V2_PREFIX
    if v2.exists():
        raise FileExistsError(f"{v2} exists; generate into an empty directory")
    started = time.monotonic()
    planner = Planner(blobs, seed, avg_layer_size)
    planner.plan()
    say(f"planned {len(planner.repos)} repositories, {len(planner.sizes)} layers "
        f"({time.monotonic() - started:.1f}s)")
    for prefix in range(256):
        os.makedirs(v2 / "blobs" / "sha256" / f"{prefix:02x}", 0o755)
    (v2 / "repositories").mkdir(0o755)
    files = 0
    dirs = 256 + 6  # the prefixes; docker, registry, v2, blobs, sha256, repositories
    buffer_size = max(BUFFER_MIN, 2 * planner.cap)
    jobs = max(1, jobs or os.cpu_count() or 1)
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with context.Pool(jobs, _init_worker, (str(v2), seed, buffer_size)) as pool:
        tasks = [(start, planner.sizes[start:start + 4096])
                 for start in range(0, len(planner.sizes), 4096)]
        layer_hexes: list[str] = []
        for hexes, nfiles, ndirs in pool.imap(_write_layers, tasks):
            layer_hexes.extend(hexes)
            files += nfiles
            dirs += ndirs
        say(f"wrote {len(layer_hexes)} layers ({time.monotonic() - started:.1f}s)")

        builder = Builder(layer_hexes, planner.sizes, seed)
        for repo in planner.repos:
            for tag in repo.tags:
                for node in tag.history:
                    if tag.signs is not None:
                        builder.cosign(node, tag.signs)
                    else:
                        builder.build(node)
            for node in repo.by_digest + repo.deleted:
                builder.build(node)
        repo_files, marked, shared_links = _describe_repos(planner, layer_hexes, seed)
        say(f"built {len(builder.blobs)} manifests, configs and payloads "
            f"({time.monotonic() - started:.1f}s)")
        work: list[tuple[Callable[..., tuple[int, int]], Any]] = \
            [(_write_blobs, c) for c in _chunks(builder.blobs, 2048)] + \
            [(_write_repos, c) for c in _chunks(repo_files, 16)]
        results = [pool.apply_async(fn, (arg,)) for fn, arg in work]
        for result in results:
            nfiles, ndirs = result.get()
            files += nfiles
            dirs += ndirs
    # Date what several workers wrote into last, now that nothing is added to it any more.
    name_dirs = {str(v2 / "repositories" / "/".join(r.name.split("/")[:i]))
                 for r in repo_files for i in range(1, r.name.count("/") + 2)}
    dirs += len(name_dirs)
    shared = name_dirs | {str(v2 / "blobs" / "sha256" / f"{prefix:02x}") for prefix in range(256)}
    shared |= {str(root / "docker"), str(root / "docker/registry"), str(v2),
               str(v2 / "blobs"), str(v2 / "blobs/sha256"), str(v2 / "repositories")}
    for path in shared:
        os.utime(path, (EPOCH, EPOCH))
    say(f"wrote the store ({time.monotonic() - started:.1f}s)")

    all_blobs = set(layer_hexes) | {hex_ for hex_, _, _ in builder.blobs}
    if len(all_blobs) != blobs:
        raise AssertionError(f"generated {len(all_blobs)} blobs, planned {blobs}")
    sizes = {hex_: len(data) for hex_, data, _ in builder.blobs}
    layer_bytes = sum(planner.sizes)
    unreferenced = all_blobs - marked
    unreferenced_bytes = sum(sizes[h] if h in sizes else 0 for h in unreferenced)
    layer_index = {h: i for i, h in enumerate(layer_hexes)}
    unreferenced_bytes += sum(planner.sizes[layer_index[h]] for h in unreferenced
                              if h in layer_index)
    record = _record(planner, repo_files, blobs, seed, avg_layer_size, files, dirs,
                     layer_bytes + builder.blob_bytes, len(unreferenced), unreferenced_bytes,
                     shared_links, time.monotonic() - started)
    (root / RECORD_NAME).write_text(json.dumps(record, indent=1) + "\n")
    write_registry_config(root / CONFIG_NAME, root)
    return record


def _describe_repos(planner: Planner, layer_hexes: list[str],
                    seed: int) -> tuple[list[RepoFiles], set[str], int]:
    """The files of every repository, the blobs a GC without -m marks, and how many blobs are
    linked into more than one repository."""
    rng = random.Random(seed ^ 0xA11CE)
    linked: dict[str, int] = {}
    marked: set[str] = set()
    repo_files: list[RepoFiles] = []
    for repo in planner.repos:
        revisions = _revisions(repo)
        layers: dict[str, None] = {}
        for node in revisions + repo.deleted:
            layers.update(dict.fromkeys(_hex(d) for d in node.blobs))
        for number in repo.orphans:
            layers[layer_hexes[number]] = None
        for node in revisions:
            # Without -m every revision is live, with what it references and its children.
            marked.add(_hex(node.digest))
            marked.update(_hex(d) for d in node.blobs)
        tags = []
        for tag in repo.tags:
            # cosign names its signature tag after the signed manifest's digest
            name = f"sha256-{_hex(tag.signs.digest)}.sig" if tag.signs else tag.name
            tags.append((name, [_hex(n.digest) for n in tag.history]))
        uploads = []
        for data in repo.uploads:
            begun = EPOCH + rng.randrange(86400 * 300)
            uploads.append((str(uuid.UUID(int=rng.getrandbits(128), version=4)), data,
                            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(begun)),
                            float(begun)))
        repo_files.append(RepoFiles(repo.name, pushed_at(len(repo_files)), list(layers),
                                    [_hex(n.digest) for n in revisions],
                                    [_hex(n.digest) for n in repo.deleted], tags, uploads))
        for hex_ in layers:
            linked[hex_] = linked.get(hex_, 0) + 1
    return repo_files, marked, sum(1 for n in linked.values() if n > 1)


def _record(planner: Planner, repo_files: list[RepoFiles], blobs: int, seed: int,
            avg_layer_size: int, files: int, dirs: int, blob_bytes: int, unreferenced: int,
            unreferenced_bytes: int, shared_links: int, seconds: float) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    nodes: dict[int, Node] = {}
    for repo in planner.repos:
        for node in _revisions(repo) + repo.deleted:
            nodes[id(node)] = node
    for node in nodes.values():
        key = {SCHEMA2: "docker-image", DOCKER_LIST: "docker-manifest-list",
               OCI_INDEX: "oci-index"}.get(node.media_type, "oci-image")
        if node.kind in ("referrer", "cosign"):
            key = f"{node.kind}"
        kinds[key] = kinds.get(key, 0) + 1
    nested = sum(1 for n in nodes.values() if n.kind == "index"
                 and any(c.kind == "index" for c, _ in n.children))
    tagged = [[r.name, name, "sha256:" + history[-1]]
              for r in repo_files for name, history in r.tags]
    revisions = sum(len(r.revisions) for r in repo_files)
    tagged_revisions = sum(len({h[-1] for _, h in r.tags}) for r in repo_files)
    return {
        "format": FORMAT,
        "generator": "bench/generate.py",
        "seed": seed,
        "blobs_requested": blobs,
        "avg_layer_size": avg_layer_size,
        "seconds": round(seconds, 1),
        "counts": {
            "blobs": blobs,
            "blob_bytes": blob_bytes,
            "files": files,
            "directories": dirs,
            "repositories": len(repo_files),
            "nested_repositories": sum(1 for r in repo_files if "/" in r.name),
            "tags": len(tagged),
            "most_tags_in_a_repository": max(len(r.tags) for r in repo_files),
            "repositories_with_50_tags_or_more": sum(1 for r in repo_files if len(r.tags) >= 50),
            "overwritten_tags": sum(1 for r in repo_files for _, h in r.tags if len(h) > 1),
            "revisions": revisions,
            "untagged_revisions": revisions - tagged_revisions,
            "manifests": dict(sorted(kinds.items())),
            "nested_indexes": nested,
            "deleted_manifests": sum(len(r.deleted) for r in repo_files),
            "referrers_of_deleted": sum(1 for r in planner.repos for n in r.by_digest
                                        if n.subject is not None and n.subject in r.deleted),
            "layer_links": sum(len(r.layers) for r in repo_files),
            "blobs_linked_in_several_repositories": shared_links,
            "orphan_blobs_linked": sum(len(r.orphans) for r in planner.repos),
            "orphan_blobs_unlinked": len(planner.unlinked),
            "uploads": sum(len(r.uploads) for r in repo_files),
        },
        "features": sorted(planner.seen),
        # Without -m every revision is live: what neither a revision nor anything a revision
        # references (config, layers, payloads, index children) is what any GC must find.
        "expected": {"unreferenced_blobs": unreferenced, "unreferenced_bytes": unreferenced_bytes},
        "tagged": tagged,
    }


def write_registry_config(path: Path, root: Path) -> Path:
    """Write a read-only registry ``config.yml`` for the store at ``root`` (no port is opened by
    ``garbage-collect``; ``serve`` would listen on 127.0.0.1 only)."""
    # A JSON string is a valid YAML double-quoted scalar: any path is quoted safely.
    Path(path).write_text(f"""version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {json.dumps(str(Path(root).resolve()))}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: true
http:
  addr: 127.0.0.1:5000
""")
    return Path(path)


def default_root(blobs: int, seed: int, avg_layer_size: int) -> Path:
    """Where a store goes when no ``--out`` is given: under the system's temporary directory."""
    name = f"store-{blobs}-s{seed}-a{avg_layer_size}"
    return Path(tempfile.gettempdir()) / "regstore-bench" / name


def main(argv: Sequence[str] | None = None) -> int:
    """Generate one store from the command line; print its counts as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blobs", type=int, required=True,
                        help=f"blobs in blobs/ (exactly; at least {MIN_BLOBS})")
    parser.add_argument("--seed", type=int, default=1, help="the same seed gives the same store")
    parser.add_argument("--avg-layer-size", type=int, default=DEFAULT_AVG_LAYER_SIZE,
                        metavar="BYTES", help="mean layer size (default %(default)s)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="storage root to create (default: <tmp>/regstore-bench/store-...)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count(), metavar="N",
                        help="writer processes (default: one per CPU)")
    args = parser.parse_args(argv)
    root = args.out or default_root(args.blobs, args.seed, args.avg_layer_size)
    need, inodes = estimate(args.blobs, args.avg_layer_size)
    root.mkdir(parents=True, exist_ok=True)
    free = _free(root)
    if free is not None and need > free[0] or free is not None and inodes > free[1]:
        print(f"not enough room in {root}: about {need / 1e9:.1f} GB and {inodes} inodes needed, "
              f"{free[0] / 1e9:.1f} GB and {free[1]} inodes free", file=sys.stderr)
        return 1
    record = generate(root, args.blobs, args.seed, args.avg_layer_size, args.jobs,
                      progress=lambda line: print(line, file=sys.stderr))
    print(json.dumps({"root": str(root), "config": str(root / CONFIG_NAME),
                      "record": str(root / RECORD_NAME), "seconds": record["seconds"],
                      "counts": record["counts"], "expected": record["expected"]}, indent=1))
    return 0


def _free(path: Path) -> tuple[int, int] | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize, st.f_favail


if __name__ == "__main__":
    sys.exit(main())
