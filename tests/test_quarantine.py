"""Quarantine: renames out of the store with a journal, and restores byte-identical."""

import hashlib
import io
import json
import os

import pytest

from regstore import layout
from regstore.cli import main
from regstore.holding import read_journal, runs_in
from regstore.quarantine import Quarantine, QuarantineError
from regstore.store import FilesystemStore, ReadOnlyStore, StoreError
from regstore.verify import quarantine_key
from tests.builders import build_store


def snapshot(path):
    """Every file below ``path`` with its bytes, mode, mtime and inode."""
    found = {}
    for dirpath, _, files in os.walk(path):
        for name in files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            with open(p, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            found[os.path.relpath(p, path)] = (digest, st.st_mode, st.st_mtime_ns, st.st_ino)
    return found


@pytest.fixture
def store_and_blob(tmp_path):
    b, _ = build_store(tmp_path / "root", {"app": {"v1": [b"layer bytes"]}})
    digest = b.blob(b"some blob")
    return FilesystemStore(tmp_path / "root", writable=True), digest


def test_put_moves_the_blob_directory_and_journals_it(tmp_path, store_and_blob):
    store, digest = store_and_blob
    before = snapshot(store.path(layout.blob_dir(digest)))
    q = Quarantine.open(tmp_path / "q", store)
    held = q.put(store, quarantine_key(digest), kind="blob", digest=digest, size=9,
                 reason="data hashes to sha256:…", command="regstore verify")
    assert not os.path.lexists(store.path(layout.blob_dir(digest)))
    [(item, record)] = q.entries()
    assert record == held and record.key == layout.blob_dir(digest)
    assert snapshot(item) == before  # same inode, bytes, mode, mtime: a rename
    [run] = runs_in(tmp_path / "q")
    line = json.loads((run / "journal.jsonl").read_text())
    assert line["command"] == "regstore verify" and line["digest"] == digest
    assert list(read_journal(run)) == [held]


def test_restore_puts_it_back_byte_identical(tmp_path, store_and_blob):
    store, digest = store_and_blob
    before = snapshot(store.v2)
    q = Quarantine.open(tmp_path / "q", store)
    q.put(store, quarantine_key(digest), kind="blob", digest=digest, reason="test")
    assert snapshot(store.v2) != before
    restored = q.restore(store)
    assert [h.digest for h in restored] == [digest]
    assert snapshot(store.v2) == before
    assert runs_in(tmp_path / "q") == []


def test_regstore_restore_puts_back_what_verify_quarantined(tmp_path, store_and_blob):
    store, digest = store_and_blob
    before = snapshot(store.v2)
    Quarantine.open(tmp_path / "q", store).put(store, quarantine_key(digest), kind="blob",
                                               digest=digest, reason="test")
    code = main(["restore", str(tmp_path / "q"), "--root", str(store.root)], out=io.StringIO(),
                err=io.StringIO())
    assert code == 0
    assert snapshot(store.v2) == before


def test_restore_keeps_what_was_pushed_again(tmp_path, store_and_blob):
    store, digest = store_and_blob
    q = Quarantine.open(tmp_path / "q", store)
    q.put(store, quarantine_key(digest), kind="blob", digest=digest, reason="test")
    data = store.path(layout.blob_data(digest))
    data.parent.mkdir(parents=True)
    data.write_bytes(b"some blob")  # the re-push healed it
    assert q.restore(store) == []
    assert data.read_bytes() == b"some blob"


def test_refuses_a_read_only_store(tmp_path, store_and_blob):
    store, digest = store_and_blob
    q = Quarantine.open(tmp_path / "q", store)
    with pytest.raises(ReadOnlyStore):
        q.put(FilesystemStore(store.root), quarantine_key(digest), kind="blob", digest=digest,
              reason="test")
    assert os.path.isdir(store.path(layout.blob_dir(digest)))


def test_refuses_an_absent_key_and_a_symlink(tmp_path, store_and_blob):
    store, digest = store_and_blob
    q = Quarantine.open(tmp_path / "q", store)
    with pytest.raises(StoreError, match="not there"):
        q.put(store, quarantine_key("sha256:" + "0" * 64), kind="blob",
              digest="sha256:" + "0" * 64, reason="test")
    outside = tmp_path / "outside"
    outside.mkdir()
    link_digest = "sha256:" + "1" * 64
    target = store.path(layout.blob_dir(link_digest))
    target.parent.mkdir(parents=True)
    target.symlink_to(outside)
    with pytest.raises(StoreError, match="symlink"):
        q.put(store, quarantine_key(link_digest), kind="blob", digest=link_digest,
              reason="test")
    assert outside.is_dir()


def test_refuses_a_directory_inside_the_docker_tree(tmp_path, store_and_blob):
    store, _ = store_and_blob
    with pytest.raises(QuarantineError, match="inside the store's docker tree"):
        Quarantine.open(store.root / "docker" / "registry" / "q", store)


def test_refuses_another_filesystem(tmp_path, store_and_blob, monkeypatch):
    store, _ = store_and_blob
    real_stat = os.stat

    def other_device(path, *args, **kwargs):
        st = real_stat(path, *args, **kwargs)
        if str(path).endswith("/q"):
            return os.stat_result((st.st_mode, st.st_ino, st.st_dev + 1) + tuple(st)[3:])
        return st

    monkeypatch.setattr(os, "stat", other_device)
    with pytest.raises(QuarantineError, match="another filesystem"):
        Quarantine.open(tmp_path / "q", store)


def test_a_rename_across_filesystems_is_a_clear_error(tmp_path, store_and_blob, monkeypatch):
    store, digest = store_and_blob
    q = Quarantine.open(tmp_path / "q", store)

    def exdev(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "rename", exdev)
    with pytest.raises(QuarantineError, match="another filesystem"):
        q.put(store, quarantine_key(digest), kind="blob", digest=digest, reason="test")
    monkeypatch.undo()
    assert os.path.isdir(store.path(layout.blob_dir(digest)))
    assert q.entries() == []  # the journal line names an item that never arrived
    assert q.restore(store) == []
