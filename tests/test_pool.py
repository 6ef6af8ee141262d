"""IOPool: inline while the work is answered from memory, threaded once it waits."""

from __future__ import annotations

import threading
import time

import pytest

from regstore import pool as pool_mod
from regstore.pool import IOPool


@pytest.fixture(autouse=True)
def short_window(monkeypatch):
    monkeypatch.setattr(pool_mod, "WINDOW", 0.02)


def busy(x: int) -> tuple[int, str]:
    end = time.thread_time() + 0.002
    while time.thread_time() < end:
        pass
    return x * 2, threading.current_thread().name


def waiting(x: int) -> tuple[int, str]:
    time.sleep(0.003)
    return x * 2, threading.current_thread().name


def test_work_that_keeps_the_cpu_busy_stays_inline():
    p = IOPool(4)
    try:
        results = p.map(busy, range(40))
    finally:
        p.close()
    assert [r for r, _ in results] == [x * 2 for x in range(40)]
    assert {t for _, t in results} == {threading.current_thread().name}
    assert not p.threaded


def test_work_that_waits_goes_to_threads_and_keeps_its_order():
    p = IOPool(4)
    try:
        results = p.map(waiting, range(60))
        later = p.submit(lambda: waiting(7)).result()
    finally:
        p.close()
    assert [r for r, _ in results] == [x * 2 for x in range(60)]
    assert p.threaded
    assert {t for _, t in results} - {threading.current_thread().name}, "some ran in threads"
    assert later[1] != threading.current_thread().name


def test_one_job_never_starts_a_thread():
    p = IOPool(1)
    results = p.map(waiting, range(20))
    assert {t for _, t in results} == {threading.current_thread().name}
    assert p.executor is None


@pytest.mark.parametrize("fn", [busy, waiting])
def test_an_exception_comes_out_of_map_and_submit_in_either_mode(fn):
    def failing(x: int) -> tuple[int, str]:
        if x == 30:
            raise ValueError("item 30")
        return fn(x)

    p = IOPool(4)
    try:
        with pytest.raises(ValueError, match="item 30"):
            p.map(failing, range(40))
        with pytest.raises(ValueError, match="item 30"):
            p.submit(lambda: failing(30)).result()
    finally:
        p.close()
