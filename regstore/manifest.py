"""Parsing manifests into what they reference.

Every manifest type the registry stores is understood (see the table in the project README):
docker schema1 (signed or the unsigned payload 2.5+ stores), docker schema2, docker manifest
list, OCI image manifest, OCI index (nested to any depth through its children), and the
short-lived OCI artifact manifest. A manifest that cannot be understood is a
:class:`ManifestError`, never a guess: the mark phase treats it as a reason not to sweep.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, TypeVar

from regstore.digestsets import pack
from regstore.layout import is_digest

try:
    import orjson
except ImportError:  # a dependency; without it, json parses every manifest
    orjson = None  # type: ignore[assignment]

# Registry v3 refuses manifests above 4 MiB; nothing real comes near it, so a bigger
# "manifest" is treated as broken rather than parsed (and held in memory).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_ARTIFACT = "application/vnd.oci.artifact.manifest.v1+json"

MANIFEST_MEDIA_TYPES = (SCHEMA1, SCHEMA1_SIGNED, SCHEMA2, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX,
                        OCI_ARTIFACT)


class ManifestError(ValueError):
    """The bytes are not a manifest regstore understands; the message says why."""


class Descriptor(NamedTuple):
    """One reference of a manifest: the digest, and what the manifest says about it.

    A named tuple, not a dataclass: a store has one per layer of every manifest, and a
    tuple is built in a third of the time."""

    digest: str
    size: int | None
    media_type: str | None
    role: str  # "config", "layer", "blob" (artifact), "child", "subject"
    foreign: bool = False  # carries `urls`: may legitimately be absent from the store


class References(NamedTuple):
    """Only the digests a manifest references, grouped as marking follows them: what a gc
    keeps of each manifest. The blobs, which marking only collects, as their keys
    (:mod:`regstore.digestsets`): a store has one per layer of every manifest."""

    blob_keys: bytes
    children: tuple[str, ...]
    subject: str | None


class Shipment(list):  # type: ignore[type-arg]
    """A list of parse results to send to another process (:func:`regstore.pool.fork_map`):
    its :class:`References` travel as plain tuples and are made again by one function for the
    whole list. One reduce per item, re-interning every digest on arrival, had been the
    slowest part of a gc's hand-over (15k manifests: 50-60 ms against 15). The digests
    arrive as the sender's strings, not this interpreter's interned ones."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_unshipped, ([tuple(x) if type(x) is References else x for x in self],))


def _unshipped(items: list[Any]) -> list[Any]:
    new = tuple.__new__
    return [new(References, x) if type(x) is tuple else x for x in items]


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed manifest: its type and everything it references, split by what marking needs."""

    digest: str
    media_type: str
    blobs: tuple[Descriptor, ...]  # config, layers, artifact blobs: plain blobs to keep
    children: tuple[Descriptor, ...]  # manifests of an index or list, same repository
    subject: Descriptor | None

    @property
    def is_index(self) -> bool:
        return self.media_type in (DOCKER_LIST, OCI_INDEX)

    def references(self) -> References:
        return References(pack([d.digest for d in self.blobs]),
                          tuple([d.digest for d in self.children]),
                          self.subject.digest if self.subject is not None else None)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Pickled as plain tuples and rebuilt by one function: manifests read in another
        # process (regstore.pool.fork_map) come back at a fifth of the default's cost.
        return (_rebuilt, (self.digest, self.media_type, tuple(map(tuple, self.blobs)),
                           tuple(map(tuple, self.children)),
                           tuple(self.subject) if self.subject is not None else None))


_Parsed = TypeVar("_Parsed", "Manifest", References)


def _rebuilt(digest: str, media_type: str, blobs: tuple[tuple[Any, ...], ...],
             children: tuple[tuple[Any, ...], ...], subject: tuple[Any, ...] | None) -> Manifest:
    """A :class:`Manifest` from its pickled form, its strings the interpreter's shared ones
    again (a digest held by the blob listing and by a thousand manifests is one string)."""
    intern, new = sys.intern, tuple.__new__
    return Manifest(
        intern(digest), intern(media_type),
        tuple([new(Descriptor, (intern(d), size, intern(t) if t else t, role, foreign))
               for d, size, t, role, foreign in blobs]),
        tuple([new(Descriptor, (intern(d), size, intern(t) if t else t, role, foreign))
               for d, size, t, role, foreign in children]),
        new(Descriptor, (intern(subject[0]),) + subject[1:]) if subject is not None else None)


def parse_manifest(data: bytes, digest: str) -> Manifest:
    """Parse manifest bytes stored under ``digest`` into a :class:`Manifest`.

    Raises :class:`ManifestError` for anything that is not one of the known manifest types
    with well-formed descriptors: invalid JSON, wrong shapes, digests that are not canonical,
    sizes that are not non-negative integers, a document larger than any real manifest.
    """
    return _parsed(data, digest, _descriptor, _manifest)


def parse_references(data: bytes, digest: str) -> References:
    """:func:`parse_manifest`'s ``references()``, with the same checks and errors, without
    building a descriptor for each layer (a gc reads every manifest and needs only these)."""
    return _parsed(data, digest, _checked_digest, _references_of)


def _manifest(digest: str, media_type: str, blobs: list[Descriptor],
              children: list[Descriptor], subject: Descriptor | None) -> Manifest:
    return Manifest(digest, media_type, tuple(blobs), tuple(children), subject)


def _references_of(digest: str, media_type: str, blobs: list[str], children: list[str],
                   subject: str | None) -> References:
    return References(pack(blobs), tuple(children), subject)


def _parsed(data: bytes, digest: str, describe: Callable[..., Any],
            build: Callable[..., _Parsed]) -> _Parsed:
    """:func:`_parse` with orjson, which reads a manifest in half the time json takes; on any
    failure, again with json, whose answer (result or error) is the one that counts. Where
    the two read a document differently (json takes NaN, a byte-order mark, a lone surrogate
    escape, an integer beyond 64 bits, which orjson refuses or reads as a float), what
    regstore keeps of a manifest (digests, integer sizes, media types) either fails a check
    under orjson and goes to json, or is the same."""
    if orjson is not None:
        try:
            return _parse(data, digest, describe, build, orjson.loads)
        except ManifestError:
            pass
    return _parse(data, digest, describe, build, json.loads)


def _parse(data: bytes, digest: str, describe: Callable[..., Any],
           build: Callable[..., _Parsed], loads: Callable[[bytes], Any]) -> _Parsed:
    """The one parser behind both forms: ``describe(value, role, field, i)`` checks each
    descriptor and gives what is kept of it, ``build`` the result from those."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{len(data)} bytes, larger than any real manifest "
                            f"({MAX_MANIFEST_BYTES} bytes at most)")
    try:
        doc = loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise ManifestError("JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"JSON is a {type(doc).__name__}, not an object")
    version = doc.get("schemaVersion")
    if version == 1:
        layers = []
        for i, entry in enumerate(_list(doc, "fsLayers")):
            if not isinstance(entry, dict) or not _is_digest_value(entry.get("blobSum")):
                raise ManifestError(f"fsLayers[{i}].blobSum is not a digest")
            layers.append(describe({"digest": entry["blobSum"]}, "layer", "fsLayers", i))
        return build(digest, SCHEMA1_SIGNED if "signatures" in doc else SCHEMA1, layers, [],
                     None)
    if version != 2:
        raise ManifestError(f"unknown schemaVersion {version!r}")
    media_type = doc.get("mediaType")
    if media_type is None:
        # OCI makes mediaType optional: tell index and image manifest apart by their fields.
        if "manifests" in doc and "layers" not in doc:
            media_type = OCI_INDEX
        elif "config" in doc or "layers" in doc:
            media_type = OCI_MANIFEST
        else:
            raise ManifestError("no mediaType and neither 'manifests' nor 'layers'")
    blobs, children = [], []
    if media_type in (SCHEMA2, OCI_MANIFEST):
        blobs = [describe(doc.get("config"), "config", "config")]
        blobs += [describe(d, "layer", "layers", i) for i, d in enumerate(_list(doc, "layers"))]
    elif media_type in (DOCKER_LIST, OCI_INDEX):
        children = [describe(d, "child", "manifests", i)
                    for i, d in enumerate(_list(doc, "manifests"))]
    elif media_type == OCI_ARTIFACT:
        blobs = [describe(d, "blob", "blobs", i)
                 for i, d in enumerate(_list(doc, "blobs", required=False))]
    else:
        raise ManifestError(f"unknown mediaType {str(media_type)[:100]!r}")
    subject = doc.get("subject")
    return build(digest, media_type, blobs, children,
                 describe(subject, "subject", "subject") if subject is not None else None)


def _list(doc: dict[str, Any], key: str, required: bool = True) -> list[Any]:
    value = doc.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise ManifestError(f"'{key}' is {'missing' if value is None else 'not a list'}")
    return value


def _is_digest_value(value: Any) -> bool:
    return isinstance(value, str) and is_digest(value)


def _checked_digest(value: Any, role: str, field: str, i: int | None = None) -> str:
    """The digest of descriptor ``value``, once the descriptor is checked. ``field`` and ``i``
    name the descriptor in a message (``layers[3]``), built only then: this runs for every
    layer of the store."""
    if type(value) is not dict:
        raise ManifestError(f"{_where(field, i)} is not a descriptor object")
    digest = value.get("digest")
    if not _is_digest_value(digest):
        raise ManifestError(f"{_where(field, i)}.digest is not a digest: {str(digest)[:80]!r}")
    size = value.get("size")
    if size is not None and (type(size) is not int or size < 0):
        raise ManifestError(f"{_where(field, i)}.size is not a non-negative integer")
    media_type = value.get("mediaType")
    if media_type is not None and type(media_type) is not str:
        raise ManifestError(f"{_where(field, i)}.mediaType is not a string")
    return digest


def _descriptor(value: Any, role: str, field: str, i: int | None = None) -> Descriptor:
    # Interned: the same layer digest appears in thousands of manifests.
    digest = sys.intern(_checked_digest(value, role, field, i))
    media_type = value.get("mediaType")
    if media_type is not None:
        media_type = sys.intern(media_type)  # a handful of values, each held 100,000 times
    return Descriptor(digest, value.get("size"), media_type, role, bool(value.get("urls")))


def _where(field: str, i: int | None) -> str:
    return field if i is None else f"{field}[{i}]"
