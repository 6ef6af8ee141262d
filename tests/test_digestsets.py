import pytest
from hypothesis import given
from hypothesis import strategies as st

from regstore.digestsets import DigestKeys, pack

HEX = "0123456789abcdef"
SHA256 = st.text(HEX, min_size=64, max_size=64).map(lambda h: f"sha256:{h}")
SHA512 = st.text(HEX, min_size=128, max_size=128).map(lambda h: f"sha512:{h}")
# Few distinct hashes, so that the lists below share digests often.
SMALL = st.sampled_from([f"sha256:{c * 64}" for c in HEX[:6]] +
                        [f"sha384:{c * 96}" for c in HEX[6:9]])
DIGESTS = st.lists(SHA256 | SHA512 | SMALL, max_size=40)


def key(digest):
    return digest.split(":")[1][:16]


@given(DIGESTS, DIGESTS)
def test_a_digest_is_missing_exactly_when_no_member_shares_its_key(members, asked):
    keys = DigestKeys.of(members)
    held = {key(d) for d in members}
    assert keys.missing(asked) == [d for d in asked if key(d) not in held]
    assert keys.absent(asked) == [i for i, d in enumerate(asked) if key(d) not in held]
    assert [d in keys for d in asked] == [key(d) in held for d in asked]
    assert not keys.missing(members) and len(keys) == len(held)


@given(DIGESTS, st.integers(1, 5))
def test_the_parts_a_set_is_made_of_do_not_change_it(members, parts):
    cut = [members[i::parts] for i in range(parts)]
    assert DigestKeys([pack(c) for c in cut]) == DigestKeys.of(members)
    more = "sha256:" + "f" * 64
    assert (DigestKeys.of(members + [more]) == DigestKeys.of(members)) == \
        (key(more) in {key(d) for d in members})


def test_a_digest_sharing_a_key_with_a_member_is_kept_never_dropped():
    # The first 16 hex digits are the key: these two differ only after them.
    member, other = "sha256:" + "1" * 16 + "a" * 48, "sha256:" + "1" * 16 + "b" * 48
    keys = DigestKeys.of([member])
    assert other in keys and keys.missing([other, "sha256:" + "2" * 64]) == ["sha256:" + "2" * 64]
    assert len(DigestKeys.of([member, other])) == 1


def test_an_empty_set_holds_nothing():
    keys = DigestKeys()
    assert len(keys) == 0 and ("sha256:" + "a" * 64) not in keys
    assert keys.absent(["sha256:" + "a" * 64, "sha512:" + "b" * 128]) == [0, 1]
    assert keys.missing(iter(["sha256:" + "a" * 64])) == ["sha256:" + "a" * 64]


def test_what_is_not_a_digest_is_in_no_set_and_cannot_be_packed():
    keys = DigestKeys.of(["sha256:" + "a" * 64])
    assert "sha256:" not in keys and "sha256:zz" not in keys and None not in keys
    assert "" not in keys and b"sha256:" + b"a" * 64 not in keys
    with pytest.raises(ValueError):
        pack(["sha256:" + "g" * 64])


def test_keys_are_the_first_eight_bytes_of_the_hash_in_order():
    assert pack(["sha256:0123456789abcdef" + "0" * 48, "sha512:" + "f" * 128]) == \
        bytes.fromhex("0123456789abcdef") + b"\xff" * 8
    # Keys above 2^63 sort as unsigned numbers, after the others.
    high, low = "sha256:" + "f" * 64, "sha256:" + "7" * 64
    keys = DigestKeys.of([high, low])
    assert high in keys and low in keys and keys.missing([high, low, "sha256:" + "8" * 64]) == \
        ["sha256:" + "8" * 64]


def test_positions_count_from_the_start_across_chunks():
    asked = [f"sha256:{i:016x}{0:048x}" for i in range(70_000)]  # more than a chunk of keys
    keys = DigestKeys.of(asked[::2])
    assert keys.absent(asked) == list(range(1, 70_000, 2))
