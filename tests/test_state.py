"""The verify rotation state: round trip, self-checks, and crash safety of its writes."""

import os

import pytest

from regstore import state as state_mod
from regstore.state import StateCorrupt, VerifyState, default_state_path, dumps, load_state, \
    loads, save_state

A = "sha256:" + "a" * 64
B = "sha512:" + "b" * 128


def sample() -> VerifyState:
    s = VerifyState(pass_started=1700000000.25)
    s.record(A, 10, 1699999999.123456, 1700000001.5)
    s.record(B, 20, 1.0, 1700000002.75, ok=False)
    return s


def test_round_trip_keeps_every_field_exactly():
    s = sample()
    again = loads(dumps(s))
    assert again == s
    assert again.last_verified(A, 10, 1699999999.123456) == 1700000001.5
    assert again.known_bad(B, 20, 1.0) and again.last_verified(B, 20, 1.0) is None


def test_changed_data_counts_as_never_verified():
    s = sample()
    assert s.last_verified(A, 11, 1699999999.123456) is None  # size changed
    assert s.last_verified(A, 10, 5.0) is None  # re-written (mtime changed)
    assert not s.known_bad(B, 20, 2.0)  # a re-push replaced the bad bytes


def test_keep_only_drops_blobs_no_longer_in_the_store():
    s = sample()
    s.keep_only({A})
    assert set(s.entries) == {A}


def test_file_format_is_documented_text(tmp_path):
    text = dumps(sample()).decode()
    lines = text.splitlines()
    assert lines[0] == "regstore-verify-state 1"
    assert lines[1] == "pass 1700000000.25"
    assert lines[2] == f"{A} ok 1700000001.5 10 1699999999.123456"
    assert lines[3] == f"{B} bad 1700000002.75 20 1.0"
    assert lines[4].startswith("end 2 ") and len(lines[4].split()[2]) == 16


@pytest.mark.parametrize("offset", [0, 5, 30, 100, -20, -3])
def test_every_flipped_byte_is_detected(offset):
    data = bytearray(dumps(sample()))
    data[offset] ^= 0xFF  # every bit of one byte, as borg's tests do
    with pytest.raises(StateCorrupt):
        loads(bytes(data))


def test_flipping_any_byte_anywhere_is_detected():
    data = dumps(sample())
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 0xFF
        with pytest.raises(StateCorrupt):
            loads(bytes(flipped))


@pytest.mark.parametrize("cut", [1, 10, 40, 120])
def test_truncation_is_detected(cut):
    data = dumps(sample())
    with pytest.raises(StateCorrupt):
        loads(data[:-cut])


def test_an_appended_line_is_detected():
    data = dumps(sample())
    with pytest.raises(StateCorrupt):
        loads(data + f"{A} ok 1.0 1 1.0\n".encode())


def test_a_rewritten_body_with_a_fresh_checksum_but_wrong_count_is_detected():
    import xxhash

    body = dumps(sample()).rsplit(b"end ", 1)[0]
    with pytest.raises(StateCorrupt, match="count"):
        loads(body + f"end 7 {xxhash.xxh3_64_hexdigest(body)}\n".encode())


def test_absent_file_is_no_state(tmp_path):
    assert load_state(tmp_path / "nothing") is None


def test_default_location_is_beside_the_docker_tree(tmp_path):
    assert default_state_path(tmp_path) == tmp_path / ".regstore" / "verify-state"


def test_save_then_load(tmp_path):
    path = default_state_path(tmp_path)
    save_state(path, sample())
    assert load_state(path) == sample()
    assert os.listdir(path.parent) == ["verify-state"]  # no temporary file left


def test_a_crash_mid_write_leaves_the_previous_state_usable(tmp_path, monkeypatch):
    path = tmp_path / "verify-state"
    save_state(path, sample())
    bigger = sample()
    for i in range(1000):
        bigger.record("sha256:" + f"{i:064x}", i, 1.0, 2.0)
    real_write = os.write

    def dies_halfway(fd, data):  # the process dies after half of the new state is written
        real_write(fd, bytes(data[: len(data) // 2]))
        raise KeyboardInterrupt

    monkeypatch.setattr(state_mod.os, "write", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_state(path, bigger)
    monkeypatch.undo()
    assert load_state(path) == sample()


def test_a_killed_writer_leaves_a_temporary_file_that_is_ignored(tmp_path):
    path = tmp_path / "verify-state"
    save_state(path, sample())
    # What a SIGKILL between write and rename leaves: a partial temporary file beside it.
    (tmp_path / "verify-state.tmp-99999").write_bytes(dumps(VerifyState())[:10])
    assert load_state(path) == sample()
    save_state(path, VerifyState())
    assert load_state(path) == VerifyState()


def test_a_failed_rename_keeps_the_old_state_and_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "verify-state"
    save_state(path, sample())

    def refuse(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state_mod.os, "replace", refuse)
    with pytest.raises(OSError):
        save_state(path, VerifyState())
    monkeypatch.undo()
    assert load_state(path) == sample()
    assert os.listdir(tmp_path) == ["verify-state"]
