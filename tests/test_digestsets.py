import pickle
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from regstore import digestsets
from regstore.digestsets import DigestColumn, Digests, DigestKeys, DigestsJoin, DigestTuple, pack, \
    packed_copy

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


@given(st.lists(st.lists(st.integers(0, 40), max_size=6), max_size=30), st.integers(1, 5),
       st.integers(1, 4), st.integers(8, 40), st.booleans())
def test_keys_are_kept_once_whatever_the_chunks_they_come_in(parts, chunk, group, large,
                                                             consume):
    # Small chunks and groups: duplicates fall on both sides of every boundary; chunks of
    # `large` bytes and more copied by themselves, between groups of small ones.
    digests = [[f"sha256:{n:016x}" + f"{i:048x}" for i, n in enumerate(p)] for p in parts]
    chunks = [pack(p) for p in digests]
    with patch.object(digestsets, "_CHUNK", chunk), patch.object(digestsets, "_GROUP", group), \
            patch.object(digestsets, "_LARGE_CHUNK", large):
        keys = DigestKeys(chunks, consume=consume)
    assert chunks == ([] if consume else [pack(p) for p in digests])
    held = sorted({n for p in parts for n in p})
    assert len(keys) == len(held)
    assert keys.missing([f"sha256:{n:016x}" + "0" * 48 for n in range(42)]) == \
        [f"sha256:{n:016x}" + "0" * 48 for n in range(42) if n not in held]


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


# Hashes that differ only after their key, so that sets of them share keys.
TWINS = st.sampled_from(["sha256:" + "1" * 16 + c * 48 for c in HEX[:4]])
MEMBERS = st.lists(SHA256 | SHA512 | SMALL | TWINS, max_size=40)


@given(MEMBERS, MEMBERS)
def test_a_set_of_digests_is_exact_and_sorted(members, asked):
    digests = Digests(members)
    assert list(digests) == sorted(set(members)) and len(digests) == len(set(members))
    assert [digests[i] for i in range(len(digests))] == sorted(set(members))
    assert [d in digests for d in asked] == [d in set(members) for d in asked]
    assert digests.missing(asked) == [d for d in asked if d not in set(members)]
    assert digests.keys().tolist() == \
        np.frombuffer(pack(sorted(set(members))), dtype=">u8").tolist()
    assert pickle.loads(pickle.dumps(digests)) == digests
    assert bool(digests) == bool(members)


@given(MEMBERS, MEMBERS, st.lists(SHA256 | SMALL))
def test_a_union_holds_every_digest_of_its_parts_once(a, b, more):
    whole = Digests(a + b + more)
    assert Digests.union([Digests(a), Digests(b)], more) == whole
    # Parts that follow one another, as a store's blob prefixes do, are joined as they are.
    ordered = sorted(set(a + b))
    parts = [Digests(ordered[i:i + 3]) for i in range(0, len(ordered), 3)]
    assert list(Digests.union(reversed(parts))) == ordered


@given(MEMBERS, st.lists(SHA256 | SMALL), st.integers(1, 4), st.randoms(use_true_random=False))
def test_a_join_of_sets_as_they_come_is_their_union_whatever_their_order(members, more, size,
                                                                         rng):
    ordered = sorted(set(members))
    parts = [Digests(ordered[i:i + size]) for i in range(0, len(ordered), size)]
    for given_parts in (parts, rng.sample(parts, len(parts))):
        joined = DigestsJoin()
        for part in given_parts:
            joined.add(part)
        made = joined.done(more)
        assert made == Digests(members + more) and list(made) == sorted(set(members + more))
        assert pickle.loads(pickle.dumps(made)) == made
        assert [d in made for d in members + more] == [True] * len(members + more)
        assert made.missing(more + ["sha256:" + "f" * 64]) == \
            [d for d in more + ["sha256:" + "f" * 64] if d not in set(members + more)]


@given(st.lists(st.text(HEX, min_size=64, max_size=64)),
       st.lists(st.text(HEX, min_size=128, max_size=128)))
def test_a_listing_of_hashes_gives_the_digests_they_name(sha256, sha512):
    assert Digests.of_hashes("sha256", sha256) == Digests(f"sha256:{h}" for h in sha256)
    assert Digests.of_hashes("sha512", sha512) == Digests(f"sha512:{h}" for h in sha512)


def test_what_is_not_a_digest_is_in_no_set_of_digests():
    digests = Digests(["sha256:" + "a" * 64, "sha512:" + "b" * 128])
    for thing in ("sha256:" + "a" * 63, "sha256:" + "A" * 64, "sha256:zz", "", None, 7,
                  "sha256:" + "a" * 66, "sha384:" + "a" * 96):
        assert thing not in digests
    with pytest.raises(IndexError):
        digests[2]
    assert digests[-1] == "sha512:" + "b" * 128 and Digests() == Digests([])
    assert not Digests() and Digests().missing(["sha256:" + "a" * 64]) == ["sha256:" + "a" * 64]


@given(MEMBERS, MEMBERS)
def test_keys_of_a_set_of_digests_find_what_is_missing_without_strings(members, asked):
    keys = DigestKeys.of(asked)
    assert keys.missing(Digests(members)) == keys.missing(sorted(set(members)))


@given(st.lists(MEMBERS, max_size=5), MEMBERS, st.integers(1, 8))
def test_what_is_missing_from_many_sets_is_found_in_one_pass(sets, marked, chunk):
    keys = DigestKeys.of(marked)
    parts = [Digests(s) for s in sets]
    # Batches of a few digests: sets cut in parts, batches across sets.
    with patch.object(digestsets, "_CHUNK", chunk):
        assert keys.missing_in(parts) == \
            [(i, d) for i, p in enumerate(parts) for d in keys.missing(sorted(set(p)))]
        assert [d for p in parts for d in keys.missing(p)] == \
            [d for _, d in keys.missing_in(parts)]


@given(st.lists(MEMBERS, max_size=6), MEMBERS, st.integers(1, 8))
def test_keys_of_many_sets_absent_from_one_are_found_in_one_pass(sets, marked, chunk):
    with patch.object(digestsets, "_CHUNK", chunk):
        keyed = [DigestKeys.of_digests(Digests(members)) for members in sets]
        assert keyed == [DigestKeys.of(members) for members in sets]
        def keys_of(digests):
            return {int(key(d), 16) for d in digests}

        present = keys_of(marked)
        of = DigestKeys.of(marked)
        assert of.absent_in(keyed) == [(i, k) for i, members in enumerate(sets)
                                       for k in sorted(keys_of(members)) if k not in present]
        assert [of.covers(k) for k in keyed] == [keys_of(m) <= present for m in sets]
        hashes, wanted = [d.split(":")[1] for d in marked], keys_of(marked[::2])
        assert DigestKeys.hashes_with_keys(hashes, wanted) == \
            [h for h, d in zip(hashes, marked) if int(key(d), 16) in wanted]


@given(MEMBERS, st.integers(0, 50), st.integers(0, 50))
def test_the_keys_of_part_of_a_set_are_that_part_of_its_keys(members, start, stop):
    digests = Digests(members)
    assert digests.keys(start, stop).tolist() == digests.keys().tolist()[start:stop]


NAMES = st.lists(st.sampled_from([f"sha256:{c * 64}" for c in HEX]), max_size=12)


@given(NAMES, NAMES)
def test_a_digest_tuple_answers_as_the_set_of_its_strings(items, others):
    t, s, o = DigestTuple(items), set(items), set(others)
    assert list(t) == sorted(s) and len(t) == len(s)
    assert [x in t for x in others + ["sha256:", ""]] == [x in s for x in others + ["sha256:", ""]]
    assert None not in t and (t == s) and (s == t) and (t == frozenset(s)) and not (t != s)
    assert (t == o) == (s == o) and (t != o) == (s != o)
    for op in (lambda a, b: a - b, lambda a, b: a | b, lambda a, b: a & b):
        for left, right, expected in ((t, o, op(s, o)), (o, t, op(o, s)),
                                      (t, DigestTuple(others), op(s, o)),
                                      (frozenset(o), t, op(frozenset(o), s))):
            got = op(left, right)
            assert type(got) is set and got == expected
    assert pickle.loads(pickle.dumps(t)) == t and type(pickle.loads(pickle.dumps(t))) is DigestTuple


@given(MEMBERS, MEMBERS)
def test_a_set_of_digests_answers_as_the_set_of_its_strings(members, others):
    d, s, o = Digests(members), set(members), set(others)
    assert (d == s) and (s == d) and (d == frozenset(s)) and (d == o) == (s == o)
    for op in (lambda a, b: a - b, lambda a, b: a | b, lambda a, b: a & b):
        for left, right, expected in ((d, o, op(s, o)), (o, d, op(o, s)),
                                      (d, Digests(others), op(s, o)),
                                      (DigestTuple(others), d, op(o, s)),
                                      (d, DigestTuple(others), op(s, o)),
                                      (frozenset(o), d, op(frozenset(o), s))):
            got = op(left, right)
            assert type(got) is set and got == expected


@given(st.lists(MEMBERS, max_size=6), st.lists(SHA256 | SMALL, max_size=8))
def test_a_merge_of_sets_in_any_order_is_their_union(parts, loose):
    merged = Digests.merged([Digests(p) for p in parts] + [loose])
    assert merged == Digests([d for p in parts for d in p] + loose)
    assert merged.strings(0, len(merged)) == list(merged)
    for start, stop in ((0, 1), (1, 3), (len(merged) - 1, len(merged) + 2)):
        assert merged.strings(start, stop) == list(merged)[start:stop]
    assert merged.packed_keys() == pack(merged)


@given(MEMBERS, MEMBERS)
def test_the_keys_two_sets_have_in_common_are_found_in_order(a, b):
    one, other = DigestKeys.of(a), DigestKeys.of(b)
    expected = sorted({DigestKeys.key_of(d) for d in a} & {DigestKeys.key_of(d) for d in b})
    assert one.common(other) == other.common(one) == expected
    assert all(DigestKeys.key_of(d) == int(key(d), 16) for d in a)


@given(MEMBERS, st.sampled_from(["", "sha256:", "sha256:0", "sha256:00", "sha256:ab", "sha256:aA",
                                  "sha256:abc", "sha512:", "sha384:5", "sha256:zz"]))
def test_the_digests_starting_with_a_text_are_found_in_order(members, text):
    digests = Digests(members)
    assert digests.starting(text) == [d for d in digests if d.startswith(text)]


@given(st.lists(st.none() | SHA256 | SHA512 | SMALL |
                st.text(HEX.upper(), min_size=64, max_size=64).map(lambda h: f"sha256:{h}"),
                max_size=12))
def test_a_column_of_digests_gives_back_what_it_was_made_of(items):
    column = DigestColumn(items)
    assert column.tolist() == items and [column[i] for i in range(len(items))] == items
    assert len(column) == len(items) and bool(column) == bool(items)
    again = pickle.loads(pickle.dumps(column))
    assert again == column and again.tolist() == items
    with pytest.raises(IndexError):
        column[len(items)]


def test_a_packed_copy_gives_equal_strings_or_the_slice_itself():
    sha256 = [f"sha256:{i:064x}" for i in range(9000)]  # more than one packing group
    odd = ["sha512:" + "a" * 128, "sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha256:" + "g" * 64,
           "sha384" + ":" + "b" * 64]
    twins = ["sha256:" + "a" * 63, "sha256:" + "a" * 65]  # their lengths add up
    for digests in [sha256, sha256 + twins] + [sha256 + [o] for o in odd]:
        strings = packed_copy(digests)
        for start, stop in ((0, len(digests)), (4095, 4097), (len(digests) - 1, len(digests)),
                            (7, 7)):
            assert strings(start, stop) == digests[start:stop]
    made = packed_copy(sha256)(0, 1)[0]
    assert made == sha256[0] and made is not sha256[0]
    assert packed_copy(sha256 + odd[1:2])(0, 1)[0] is sha256[0]  # not all canonical: the slice
