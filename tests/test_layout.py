import pytest
from hypothesis import given
from hypothesis import strategies as st

from regstore import layout
from regstore.store.base import StoreError, check_key

HEX = "a" * 64


@pytest.mark.parametrize("text", [f"sha256:{HEX}", f"sha512:{'0' * 128}", f"sha384:{'1' * 96}"])
def test_canonical_digests_are_accepted(text):
    assert layout.check_digest(text) == text


@pytest.mark.parametrize("text", [
    "", "sha256:", f"sha256:{HEX[:-1]}", f"sha256:{HEX}0", f"SHA256:{HEX}", f"sha256:{HEX.upper()}",
    f"md5:{'a' * 32}", "sha256:../../etc", f"sha256:{HEX}\n", f" sha256:{HEX}", f"sha512:{HEX}",
])
def test_anything_else_is_not_a_digest(text):
    with pytest.raises(layout.InvalidName):
        layout.check_digest(text)


def test_keys_are_built_from_validated_parts_only():
    d = f"sha256:{HEX}"
    assert layout.blob_dir(d) == f"blobs/sha256/aa/{HEX}"
    assert layout.layer_link("team/app/api", d) == \
        f"repositories/team/app/api/_layers/sha256/{HEX}/link"
    assert layout.tag_current_link("app", "v1.0") == \
        "repositories/app/_manifests/tags/v1.0/current/link"
    for bad in ("..", "App", "a//b", "/abs", "a/../b", "_layers", "a-", ""):
        with pytest.raises(layout.InvalidName):
            layout.repository_dir(bad)
    for bad in ("..", "-x", "a/b", "x" * 129):
        with pytest.raises(layout.InvalidName):
            layout.tag_dir("app", bad)
    with pytest.raises(layout.InvalidName):
        layout.blob_dir("sha256:../../../etc/passwd")


@pytest.mark.parametrize("content,expected", [
    (f"sha256:{HEX}".encode(), f"sha256:{HEX}"),
    (f"sha256:{HEX}\n".encode(), f"sha256:{HEX}"),
])
def test_link_content(content, expected):
    assert layout.parse_link(content) == expected


@pytest.mark.parametrize("content", [b"", b"   ", b"\xff\xfe", b"sha256:../../etc", b"garbage",
                                     f"sha256:{HEX}sha256:{HEX}".encode()])
def test_bad_link_content(content):
    with pytest.raises(layout.InvalidName):
        layout.parse_link(content)


NAME = st.text(alphabet="0123456789abcdefA/.\n", min_size=0, max_size=130) | \
    st.sampled_from([HEX, "b" * 64, "0" * 96, "1" * 128, HEX + "/" + HEX, HEX + "\n"])


@given(st.sampled_from(["sha256", "sha384", "sha512", "md5", ""]), st.lists(NAME, max_size=8))
def test_a_listing_is_named_as_each_of_its_names_would_be(algorithm, names):
    # One pattern over the whole listing must agree with the per-name check, name for name.
    expected = [layout.digest_from_parts(algorithm, n) for n in names]
    assert layout.digests_from_names(algorithm, names) == expected


@pytest.mark.parametrize("key", ["", "/a", "a/", "a//b", "a/./b", "a/../b", ".", "..", "a/..",
                                 "./a"])
def test_keys_with_empty_dot_or_dotdot_components_are_refused(key):
    with pytest.raises(StoreError):
        check_key(key)


@pytest.mark.parametrize("key", ["a/b/c", "a/.b/c", "a/..b", "...", "a/b.", "a/..\n"])
def test_plain_keys_pass(key):
    check_key(key)


@given(st.text(alphabet="a./_\n", max_size=12))
def test_the_quick_key_check_refuses_exactly_what_the_pattern_refuses(key):
    from regstore.store.base import _BAD_KEY_RE

    try:
        check_key(key)
        refused = False
    except StoreError:
        refused = True
    assert refused == bool(_BAD_KEY_RE.search(key))
