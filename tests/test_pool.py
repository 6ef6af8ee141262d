"""IOPool: inline while the work is answered from memory, threaded once it waits."""

from __future__ import annotations

import math
import os
import threading
import time

import pytest

from regstore import pool as pool_mod
from regstore.pool import MIN_CHUNK, ForkError, IOPool, PoolPerProcess, _chunks, fork_map


class QuietClock:
    """The pool's clocks as a quiet machine shows them: its wall clock is the CPU time of
    this process's threads plus the time the tests' work says it waited. Other load on the
    machine (which takes the core away from busy work, and so looks like waiting) does not
    count: these tests judge the pool's rule, not how loaded the machine is."""

    def __init__(self) -> None:
        self.waited = 0.0
        self._lock = threading.Lock()

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)
        with self._lock:
            self.waited += seconds

    def perf_counter(self) -> float:
        return time.process_time() + self.waited

    def thread_time(self) -> float:
        return time.thread_time()


CLOCK = QuietClock()


@pytest.fixture(autouse=True)
def short_window(monkeypatch):
    monkeypatch.setattr(pool_mod, "WINDOW", 0.02)
    monkeypatch.setattr(pool_mod, "time", CLOCK)


def busy(x: int) -> tuple[int, str]:
    end = time.thread_time() + 0.002
    while time.thread_time() < end:
        pass
    return x * 2, threading.current_thread().name


def waiting(x: int) -> tuple[int, str]:
    CLOCK.wait(0.003)
    return x * 2, threading.current_thread().name


def mapped(p: IOPool, fn, n: int) -> list[tuple[int, str]]:
    """``p.map(fn, range(n))``, its results checked to come in order; the pool stays open."""
    results = p.map(fn, range(n))
    assert [r for r, _ in results] == [x * 2 for x in range(n)]
    return results


def test_work_that_keeps_the_cpu_busy_stays_inline():
    p = IOPool(4)
    try:
        results = mapped(p, busy, 40)
    finally:
        p.close()
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


def test_a_pool_for_a_store_that_waits_uses_its_threads_from_the_first_item():
    p = IOPool(4, waits=True)
    try:
        results = p.map(busy, range(8))  # even work that would have kept it inline
    finally:
        p.close()
    assert [r for r, _ in results] == [x * 2 for x in range(8)]
    assert threading.current_thread().name not in {t for _, t in results}


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


def test_fork_map_shares_chunks_among_processes_and_returns_them_in_order():
    def chunk(items):
        time.sleep(0.02)  # long enough that every process gets to take some
        return [(x * 2, os.getpid()) for x in items]

    results = fork_map(chunk, range(300), 3)
    assert [r for r, _ in results] == [x * 2 for x in range(300)]
    assert len({pid for _, pid in results}) == 3


def test_fork_map_can_leave_every_chunk_to_its_children():
    def chunk(items):
        time.sleep(0.02)
        return [(x * 2, os.getpid()) for x in items]

    done = []
    results = fork_map(chunk, range(300), 2, meanwhile=lambda: done.append(os.getpid()),
                       here=False)
    assert [r for r, _ in results] == [x * 2 for x in range(300)]
    pids = {pid for _, pid in results}
    assert len(pids) == 2 and os.getpid() not in pids and done == [os.getpid()]


def test_chunks_shrink_as_the_work_runs_out_and_cover_every_item_once():
    for n, processes in ((10, 2), (300, 3), (23_834, 2), (1_000_000, 4)):
        bounds = _chunks(n, processes)
        sizes = [b - a for a, b in zip(bounds, bounds[1:])]
        assert bounds[0] == 0 and bounds[-1] == n and all(size > 0 for size in sizes)
        assert sizes[0] == min(n, max(MIN_CHUNK, -(-n // (2 * processes))))
        assert sizes == sorted(sizes, reverse=True)
        assert all(size >= MIN_CHUNK for size in sizes[:-1])
        assert len(sizes) <= 2 * processes * (math.log(max(n, MIN_CHUNK) / MIN_CHUNK) + 1) + 1


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_other_work_runs_here_while_the_children_take_the_items(processes):
    done = []

    def listing():
        time.sleep(0.3)  # the children take every chunk meanwhile
        done.append("listed")

    results = fork_map(lambda xs: [(x, os.getpid(), list(done)) for x in xs], range(30),
                       processes, meanwhile=listing)
    assert [x for x, _, _ in results] == list(range(30)) and done == ["listed"]
    mine = [seen for _, pid, seen in results if pid == os.getpid()]
    # what this process took, it took after its other work
    assert all(seen == ["listed"] for seen in mine)
    if processes == 1:
        assert len(mine) == 30
    else:
        assert len(mine) < 30 and len({pid for _, pid, _ in results} - {os.getpid()}) >= 1


def test_a_pool_per_process_is_one_pool_in_each_process_never_the_parents():
    pools = PoolPerProcess(2)
    mine = pools.get()
    assert pools.get() is mine

    def chunk(items):
        pool = pools.get()
        assert pool is pools.get()
        return [(os.getpid(), pool is mine, pool.map(lambda x: x + 1, [x])[0]) for x in items]

    results = fork_map(chunk, range(200), 2)
    assert [r for _, _, r in results] == list(range(1, 201))
    assert all(is_mine == (pid == os.getpid()) for pid, is_mine, _ in results)
    pools.close()


def test_a_failure_of_the_other_work_kills_the_children():
    def fail():
        raise ValueError("listing failed")

    with pytest.raises(ValueError, match="listing failed"):
        fork_map(lambda xs: [time.sleep(0.01) for _ in xs], range(10), 2, meanwhile=fail)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # every child was reaped


def test_fork_map_runs_inline_with_one_process_or_few_items():
    for processes, items in ((1, range(10)), (4, range(3))):
        results = fork_map(lambda xs: [os.getpid() for _ in xs], items, processes)
        assert set(results) == {os.getpid()}


@pytest.mark.parametrize("in_child", [False, True], ids=["in-this-process", "in-a-child"])
def test_a_failure_in_any_chunk_raises_and_leaves_no_child(in_child):
    parent = os.getpid()

    def chunk(items):
        if (os.getpid() != parent) == in_child:
            raise ValueError(f"chunk starting at {items[0]} failed")
        time.sleep(0.05)  # the others take chunks meanwhile
        return list(items)

    with pytest.raises(ForkError if in_child else ValueError, match="chunk starting at"):
        fork_map(chunk, range(300), 2)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # every child was reaped


def test_large_results_come_back_and_an_unpicklable_one_is_a_fork_error():
    big = fork_map(lambda xs: [bytes([x % 256]) * (1 << 18) for x in xs], range(64), 2)
    assert big == [bytes([x % 256]) * (1 << 18) for x in range(64)]  # 16 MiB in all

    def chunk(items):
        time.sleep(0.05)  # the child takes chunks meanwhile
        # a child's result cannot be pickled halfway through
        return [x if x % 2 or os.getpid() == parent else (lambda: x) for x in items]

    parent = os.getpid()
    with pytest.raises(ForkError, match="status"):
        fork_map(chunk, range(300), 2)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # every child was reaped


def test_stat_many_gives_each_key_its_stat_in_order_whatever_the_processes(tmp_path,
                                                                           monkeypatch):
    import regstore.pool
    from regstore.pool import stat_many
    from regstore.store import FilesystemStore

    v2 = tmp_path / "docker/registry/v2"
    v2.mkdir(parents=True)
    keys = []
    for n in range(40):
        (v2 / f"f{n}").write_bytes(b"x" * n)
        os.utime(v2 / f"f{n}", (1000 + n, 1000 + n))
        keys += [f"f{n}", f"absent{n}"]
    (v2 / "d").mkdir()
    keys.append("d")
    store = FilesystemStore(tmp_path)
    inline = stat_many(store, keys)
    assert [(st.size, st.mtime, st.is_dir) if st else None for st in inline[:4]] == \
        [(0, 1000.0, False), None, (1, 1001.0, False), None]
    assert inline[-1].is_dir
    monkeypatch.setattr(regstore.pool, "FORK_MIN_STATS", 0)  # fork even for these few
    forks = []
    real_fork_map = regstore.pool.fork_map
    monkeypatch.setattr(regstore.pool, "fork_map",
                        lambda *a: forks.append(a[2]) or real_fork_map(*a))
    for processes, jobs in ((2, 1), (3, 4)):
        assert stat_many(store, keys, jobs, processes) == inline
    assert forks == [2, 3]


def test_work_that_stops_waiting_comes_back_inline(monkeypatch):
    monkeypatch.setattr(pool_mod, "JUDGE_AGAIN_AFTER", 0.02)
    p = IOPool(4)
    try:
        mapped(p, waiting, 80)  # a burst of waits (cache misses)
        assert p.threaded
        then = mapped(p, busy, 200)  # answered from memory again
    finally:
        p.close()
    assert not p.threaded
    here = threading.current_thread().name
    assert {t for _, t in then[-40:]} == {here}, "judged again inline, it stays inline"


def test_work_that_keeps_waiting_is_judged_again_less_and_less_often(monkeypatch):
    monkeypatch.setattr(pool_mod, "JUDGE_AGAIN_AFTER", 0.01)
    p = IOPool(4)
    try:
        results = mapped(p, waiting, 400)
    finally:
        p.close()
    assert p.threaded and p._judge_after > 0.01 * 4
    inline = sum(t == threading.current_thread().name for _, t in results)
    assert inline < len(results) / 4, "most of the waiting work ran in threads"


def test_a_store_that_waits_keeps_its_threads_throughout(monkeypatch):
    monkeypatch.setattr(pool_mod, "JUDGE_AGAIN_AFTER", 0.001)
    p = IOPool(4, waits=True)
    try:
        results = mapped(p, busy, 300)
    finally:
        p.close()
    assert p.threaded
    assert threading.current_thread().name not in {t for _, t in results[1:]}
