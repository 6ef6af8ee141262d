import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regstore.digestsets import pack
from regstore.manifest import (DOCKER_LIST, MAX_MANIFEST_BYTES, OCI_ARTIFACT, OCI_INDEX,
                               OCI_MANIFEST, SCHEMA1, SCHEMA1_SIGNED, SCHEMA2, ManifestError,
                               Shipment, parse_manifest, parse_references)

A, B, C = ("sha256:" + c * 64 for c in "abc")


def desc(d, size=10, **kw):
    return {"mediaType": "x", "digest": d, "size": size, **kw}


def parse(doc):
    data, digest = json.dumps(doc).encode(), "sha256:" + "f" * 64
    manifest = parse_manifest(data, digest)
    # What a gc parses (the references alone) is what the whole manifest references.
    assert parse_references(data, digest) == manifest.references()
    return manifest


def test_schema2_references_config_and_layers():
    m = parse({"schemaVersion": 2, "mediaType": SCHEMA2, "config": desc(A),
               "layers": [desc(B), desc(C, urls=["https://example.invalid/x"])]})
    assert m.media_type == SCHEMA2
    assert [(d.digest, d.role, d.foreign) for d in m.blobs] == \
        [(A, "config", False), (B, "layer", False), (C, "layer", True)]
    assert m.children == () and m.subject is None


def test_oci_manifest_without_media_type_and_with_subject():
    m = parse({"schemaVersion": 2, "config": desc(A), "layers": [], "subject": desc(B)})
    assert m.media_type == OCI_MANIFEST
    assert m.subject.digest == B
    assert [d.digest for d in m.blobs] == [A]


@pytest.mark.parametrize("media_type", [DOCKER_LIST, OCI_INDEX, None])
def test_index_children(media_type):
    doc = {"schemaVersion": 2, "manifests": [desc(A), desc(B)]}
    if media_type:
        doc["mediaType"] = media_type
    m = parse(doc)
    assert m.is_index and [c.digest for c in m.children] == [A, B] and m.blobs == ()


def test_artifact_manifest():
    m = parse({"mediaType": OCI_ARTIFACT, "schemaVersion": 2, "artifactType": "x",
               "blobs": [desc(A)], "subject": desc(B)})
    assert [d.digest for d in m.blobs] == [A] and m.subject.digest == B


def test_schema1_unsigned_and_signed():
    doc = {"schemaVersion": 1, "name": "app", "tag": "v1", "architecture": "amd64",
           "fsLayers": [{"blobSum": A}, {"blobSum": B}], "history": []}
    assert parse(doc).media_type == SCHEMA1
    assert [d.digest for d in parse(doc).blobs] == [A, B]
    doc["signatures"] = [{"header": {}, "signature": "x", "protected": "y"}]
    assert parse(doc).media_type == SCHEMA1_SIGNED


@pytest.mark.parametrize("data,why", [
    (b"", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[1,2]", "not an object"),
    (b'{"schemaVersion": 3}', "schemaVersion"),
    (b'{"schemaVersion": 2, "mediaType": "text/plain"}', "unknown mediaType"),
    (b'{"schemaVersion": 2}', "neither"),
    (json.dumps({"schemaVersion": 2, "mediaType": SCHEMA2, "layers": []}).encode(), "config"),
    (json.dumps({"schemaVersion": 2, "mediaType": SCHEMA2, "config": desc("sha256:../../etc"),
                 "layers": []}).encode(), "not a digest"),
    (json.dumps({"schemaVersion": 2, "mediaType": SCHEMA2, "config": desc(A, size=-1),
                 "layers": []}).encode(), "size"),
    (json.dumps({"schemaVersion": 2, "mediaType": SCHEMA2, "config": desc(A, size="12"),
                 "layers": []}).encode(), "size"),
    (json.dumps({"schemaVersion": 2, "mediaType": SCHEMA2, "config": desc(A),
                 "layers": {"a": 1}}).encode(), "not a list"),
    (json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [A]}).encode(),
     "descriptor"),
    (json.dumps({"schemaVersion": 1, "fsLayers": [{"blobSum": "nope"}]}).encode(), "blobSum"),
    (b"[" * 100000 + b"]" * 100000, "deeply"),
    (b" " * (MAX_MANIFEST_BYTES + 1), "larger than any real manifest"),
])
def test_malformed_manifests_are_errors_with_a_reason(data, why):
    with pytest.raises(ManifestError, match=why) as whole:
        parse_manifest(data, A)
    with pytest.raises(ManifestError) as references:
        parse_references(data, A)
    assert str(references.value) == str(whole.value)


def test_a_pickled_manifest_comes_back_equal_with_shared_strings():
    import pickle
    import sys

    m = parse({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(A),
               "layers": [desc(B), desc(C, urls=["https://example.invalid/x"])],
               "subject": desc(A, size=None)})
    back = pickle.loads(pickle.dumps([m, parse({"schemaVersion": 2, "manifests": [desc(C)]})]))
    assert back[0] == m and back[1].children[0].digest == C and back[1].is_index
    # the strings of another process's manifest are this interpreter's shared ones again
    assert back[0].blobs[1].digest is sys.intern(B) and back[0].subject.digest is sys.intern(A)
    assert back[0].blobs[0].media_type is sys.intern("x")


def test_a_shipment_of_parse_results_comes_back_as_the_same_results():
    import pickle

    refs = parse_references(json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                        "config": desc(A), "layers": [desc(B)],
                                        "subject": desc(C)}).encode(), A)
    index = parse_references(json.dumps({"schemaVersion": 2, "manifests": [desc(C)]}).encode(), A)
    whole = parse({"schemaVersion": 2, "manifests": [desc(B)]})
    shipped = [refs, index, whole, "not parsed", None]
    back = pickle.loads(pickle.dumps(Shipment(shipped)))
    assert back == shipped and [type(x) for x in back] == [type(x) for x in shipped]
    assert back[0].blob_keys == pack([A, B]) and back[0].subject == C and back[1].children == (C,)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8)
DESCRIPTORS = st.fixed_dictionaries(
    {"digest": st.sampled_from([A, B, "sha256:nope"]),
     "size": st.integers(min_value=-1) | st.floats() | st.just(2 ** 70)},
    optional={"mediaType": st.text() | st.integers(), "urls": JSON_VALUES,
              "annotations": JSON_VALUES})
MANIFESTS = st.fixed_dictionaries(
    {"schemaVersion": st.sampled_from([1, 2, 3, 2 ** 70, 2.0])},
    optional={"mediaType": st.sampled_from([SCHEMA2, OCI_MANIFEST, OCI_INDEX, OCI_ARTIFACT]),
              "config": DESCRIPTORS, "layers": st.lists(DESCRIPTORS, max_size=3),
              "manifests": st.lists(DESCRIPTORS, max_size=2), "subject": DESCRIPTORS,
              "fsLayers": st.lists(st.fixed_dictionaries({"blobSum": st.sampled_from([A, 1])}),
                                   max_size=2),
              "annotations": JSON_VALUES})


def outcome(parse, data):
    """What parsing ``data`` gives: the result, or the error and its message."""
    try:
        return "parsed", parse(data, C)
    except ManifestError as exc:
        return "refused", str(exc)


def json_only(parse):
    """``parse`` with json alone (as without orjson installed)."""
    from unittest import mock

    from regstore import manifest

    def parsed(data, digest):
        with mock.patch.object(manifest, "orjson", None):
            return parse(data, digest)
    return parsed


@given(MANIFESTS, st.booleans())
def test_a_manifest_means_what_json_alone_says_it_means(doc, ascii_only):
    # orjson reads some documents otherwise (NaN, integers beyond 64 bits, lone surrogates):
    # what regstore keeps of a manifest, or the error it gives, never depends on it.
    data = json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    for parse in (parse_manifest, parse_references):
        assert outcome(parse, data) == outcome(json_only(parse), data)


@pytest.mark.parametrize("data", [
    b'{"schemaVersion": 2, "config": {"digest": "%s", "size": 123456789012345678901234567890},'
    b' "layers": []}' % A.encode(),
    b'{"schemaVersion": 2, "config": {"digest": "%s", "size": 1}, "layers": [], '
    b'"annotations": {"a": NaN, "b": "\\ud800"}}' % A.encode(),
    b'\xef\xbb\xbf{"schemaVersion": 2, "manifests": []}',
    b'{"schemaVersion": 123456789012345678901234567890}',
    b'[' * 2000 + b']' * 2000,
])
def test_what_orjson_refuses_or_reads_otherwise_is_parsed_as_json_parses_it(data):
    for parse in (parse_manifest, parse_references):
        assert outcome(parse, data) == outcome(json_only(parse), data)
