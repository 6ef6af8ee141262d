"""The benchmark's memory figure counts every process of the command, not only the largest."""

from __future__ import annotations

import os
import sys

import pytest

from bench.run import TIME_BINARY, footprint, timed

MIB = 2**20
# Two processes, each with 100 MiB of its own at the same time: what neither's peak RSS shows.
TWO_PROCESSES = """
import os, time
pid = os.fork()
own = bytearray(100 * 2**20)
time.sleep(0.5)
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_the_footprint_of_two_processes_is_their_sum_and_above_either_peak(tmp_path):
    fp = footprint([sys.executable, "-c", TWO_PROCESSES], tmp_path / "out", tmp_path / "err",
                   60)
    if fp is None:
        pytest.skip("this system does not give smaps_rollup or children under /proc")
    assert fp.exit_code == 0 and fp.processes == 2 and fp.samples > 10
    assert 200 * MIB <= fp.pss < 240 * MIB  # the two 100 MiB, and the interpreter once
    if not os.access(TIME_BINARY, os.X_OK):
        return  # without GNU time, a peak RSS includes the runner's (see bench.run.timed)
    one = timed([sys.executable, "-c", TWO_PROCESSES], tmp_path / "out", tmp_path / "err", 60)
    assert one.exit_code == 0 and one.peak_rss < fp.pss - 80 * MIB


def test_a_command_past_its_timeout_is_ended(tmp_path):
    fp = footprint([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "out",
                   tmp_path / "err", 0.5)
    if fp is None:
        pytest.skip("this system does not give smaps_rollup or children under /proc")
    assert fp.exit_code == -9
