import json
import os
import subprocess
import sys

import pytest

from regstore.errors import EXIT_LOCKED, Locked
from regstore.lock import StoreLock, lock_path


def test_second_exclusive_lock_is_refused_and_names_the_holder(tmp_path):
    with StoreLock(tmp_path, "regstore gc"):
        with pytest.raises(Locked) as err:
            StoreLock(tmp_path, "regstore gc -m").acquire()
        assert f"pid {os.getpid()}" in str(err.value) and "regstore gc" in str(err.value)
        assert err.value.exit_code == EXIT_LOCKED
        with pytest.raises(Locked):
            StoreLock(tmp_path, "regstore verify", exclusive=False).acquire()


def test_lock_is_released_and_emptied(tmp_path):
    with StoreLock(tmp_path, "regstore gc"):
        assert json.loads(lock_path(tmp_path).read_text())["command"] == "regstore gc"
    assert lock_path(tmp_path).read_text() == ""
    with StoreLock(tmp_path, "again") as lock:
        assert lock.stale is None


def test_shared_lock_creates_nothing_and_blocks_a_sweep(tmp_path):
    with StoreLock(tmp_path, "dry", exclusive=False):
        assert not lock_path(tmp_path).exists()
    lock_path(tmp_path).parent.mkdir()
    lock_path(tmp_path).write_text("")
    with StoreLock(tmp_path, "dry", exclusive=False):
        with pytest.raises(Locked):
            StoreLock(tmp_path, "gc").acquire()


def test_lock_of_a_killed_holder_is_detected_as_stale_and_taken_over(tmp_path):
    code = ("import os, sys; from regstore.lock import StoreLock; "
            "StoreLock(sys.argv[1], 'regstore gc').acquire(); os.kill(os.getpid(), 9)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)])
    assert proc.returncode == -9
    holder = json.loads(lock_path(tmp_path).read_text())
    with StoreLock(tmp_path, "regstore gc") as lock:
        assert lock.stale and f"pid {holder['pid']}" in lock.stale
