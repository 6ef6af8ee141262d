"""Ordered parallel maps that go parallel only when the store makes them wait.

Reading a store is many small requests. Where each one waits (a cold disk, a network
filesystem, an object store), threads overlap the waits and a run goes several times faster.
Where each one is answered from memory (the page cache of a store read before), Python threads
only take turns at the interpreter lock, and on a 2-core machine a run with 8 of them took 2.6
times as long as one without. Which case holds is not known in advance and can change during a
run (repositories cached, blobs not), so a pool starts inline and watches: when, over a window
of inline work, the wall time exceeds the CPU time this thread spent (system time included) by
a third, the process is waiting on the store, and the pool uses its threads. On a 100k-blob
store that took a cold run from 18.8 s inline (14.7 s always threaded) to 11.5 s, and left a
warm run inline (3.0 s; 8.7 s always threaded). After a while threaded (0.2 s of work, twice
as long each time the store still made it wait) a window inline judges again: a burst of
cache misses on a warm store no longer leaves the rest of the run fighting over the lock.
"""

from __future__ import annotations

import os
import pickle
import signal
import tempfile
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

from regstore.store.base import Stat, Store, stat_quietly

_T = TypeVar("_T")
_R = TypeVar("_R")

#: Seconds of inline work over which waiting is judged.
WINDOW = 0.1
#: Wall time over CPU time above which a window counts as waiting on the store.
WAITING = 1.3
#: Seconds of threaded work after which a pool judges again, inline, whether the work still
#: waits; doubled each time it still does.
JUDGE_AGAIN_AFTER = 0.2


class IOPool:
    """An ordered map (and submit) over ``jobs`` threads, used only once the work waits on
    I/O (see the module docstring); with one job, always inline. Results and the exceptions
    raised come out the same either way."""

    def __init__(self, jobs: int, waits: bool = False) -> None:
        # waits: the work is known to wait (an object store's requests): threads from the start
        # and throughout
        self.jobs = max(1, jobs)
        self.executor = ThreadPoolExecutor(max_workers=self.jobs) if self.jobs > 1 else None
        self.threaded = waits
        self._always = waits
        self._wall = self._cpu = 0.0
        self._threaded_for = 0.0  # seconds of threaded work since the last judgement
        self._judge_after = JUDGE_AGAIN_AFTER
        self._judging_again = False

    def map(self, fn: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
        return list(self.imap(fn, items))

    def imap(self, fn: Callable[[_T], _R], items: Iterable[_T]) -> Iterator[_R]:
        """The results of ``fn`` over ``items``, in order, each as soon as it is there."""
        items = list(items)
        n = 0
        while n < len(items):
            if self.threaded and self.executor is not None and len(items) - n > 1:
                # In batches: after a while threaded, a window inline judges again whether
                # the store still makes the work wait (a burst of cache misses ends). A store
                # whose every request waits keeps all of them in flight, as it always did.
                batch = items[n:] if self._always else items[n:n + self.jobs * 16]
                started = time.perf_counter()
                yield from self.executor.map(fn, batch)
                n += len(batch)
                self._threaded_for += time.perf_counter() - started
                if not self._always and self._threaded_for >= self._judge_after:
                    self.threaded, self._judging_again = False, True
                    self._threaded_for = 0.0
                continue
            item = items[n]
            n += 1
            yield self._inline(lambda: fn(item))

    def submit(self, fn: Callable[[], _R]) -> "Future[_R]":
        if self.threaded and self.executor is not None:
            return self.executor.submit(fn)
        future: Future[_R] = Future()
        future.set_result(self._inline(fn))
        return future

    def _inline(self, fn: Callable[[], _R]) -> _R:
        if self.executor is None or self.threaded:
            return fn()
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return fn()
        finally:
            self._wall += time.perf_counter() - wall
            self._cpu += time.thread_time() - cpu
            if self._wall >= WINDOW:
                self.threaded = self._wall > WAITING * self._cpu
                # Still waiting when judged again: the next judgement comes twice as late (on
                # a cold disk the inline windows cost what threads would have overlapped).
                self._judge_after = self._judge_after * 2 if self.threaded and \
                    self._judging_again else JUDGE_AGAIN_AFTER
                self._judging_again = False
                self._wall = self._cpu = 0.0

    def park(self) -> None:
        """End the pool's threads (new ones start when work comes): before a fork, so that
        no thread of it is running while the child is made."""
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = ThreadPoolExecutor(max_workers=self.jobs)

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)


#: Processes sharing a listing at most (one per core below that); more cost more in sending
#: results back than they save.
MAX_PROCESSES = 4


def processes_for(jobs: int) -> int:
    """Processes to share a listing among: one per core, no more than ``jobs`` allows
    (``--jobs 1`` keeps regstore to one core)."""
    return max(1, min(jobs, os.cpu_count() or 1, MAX_PROCESSES))


class ForkError(RuntimeError):
    """A forked worker of :func:`fork_map` failed; the message carries its traceback."""


def fork_map(fn: Callable[[list[_T]], list[_R]], items: Iterable[_T],
             processes: int, meanwhile: Callable[[], object] | None = None) -> list[_R]:
    """``fn`` over ``items`` in ``processes`` processes, results in order: this one and
    ``processes - 1`` forked children each take a share of the items (dealt round-robin) and
    map it with ``fn``, which takes a list and returns the list of its results; a child's
    results come back pickled, through a file in memory (:func:`_result_file`).

    Listing and parsing a large store is Python work that threads cannot spread over cores;
    processes can. ``fn`` may be a closure (a child has the parent's memory), and should make
    any thread pool it needs itself: one inherited across a fork has no threads. A child that
    fails raises :class:`ForkError` here; on any error every child is killed and reaped. With
    one process, no ``os.fork``, or too few items to be worth a fork, it runs inline.

    ``meanwhile``, other work of this process, runs here first while the children work; this
    process then takes half a child's share of the items (a blob listing is about half the
    time of a share of the manifests). Inline, it runs before ``fn``. Should it fail, the
    children are killed and its error raised.
    """
    items = list(items)
    processes = min(processes, len(items) // 2)
    if processes <= 1 or not hasattr(os, "fork"):
        if meanwhile is not None:
            meanwhile()
        return fn(items)
    # Dealt round-robin; with other work to do, this process takes half a child's share.
    slices = processes if meanwhile is None else 2 * processes - 1
    dealt = [list(range(k, len(items), slices)) for k in range(slices)]
    if meanwhile is not None:
        dealt = dealt[:1] + [dealt[k] + dealt[k + 1] for k in range(1, slices, 2)]
    children: list[tuple[int, int]] = []
    try:
        for indexes in dealt[1:]:
            children.append(_fork_child(fn, [items[i] for i in indexes]))
        if meanwhile is not None:
            meanwhile()
        results = [fn([items[i] for i in dealt[0]])]
        while children:
            pid, fd = children[0]
            _, status = os.waitpid(pid, 0)
            children.pop(0)
            os.lseek(fd, 0, os.SEEK_SET)  # the child's writes moved the offset they share
            with os.fdopen(fd, "rb") as result:
                # Unpickled as it is read: the whole payload is never held as bytes too.
                try:
                    ok, payload = pickle.load(result)
                except Exception as exc:  # cut short: the child died while writing it
                    ok, payload = False, f"its result could not be read ({exc!r})"
            if not ok or status != 0:
                raise ForkError(f"a worker process ended with status {status}: {payload}")
            results.append(payload)
    finally:
        for pid, fd in children:
            os.close(fd)
            _kill(pid)
    out: list[_R] = [None] * len(items)  # type: ignore[list-item]
    for indexes, part_results in zip(dealt, results):
        for i, result in zip(indexes, part_results):
            out[i] = result
    return out


def _result_file() -> int:
    """A file for a child's result, read by the parent once the child has ended: in memory
    (a memfd) where the system has them, else an unlinked temporary file. Through a pipe, a
    child that finished first waited, its result half-sent, until the parent came to read it
    (40-60 ms of pickling on the critical path at 100k blobs); into a file it sends it at
    once, while the parent still works. The file is not mapped: it counts in no process's
    resident memory."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("regstore-result", os.MFD_CLOEXEC)
    with tempfile.TemporaryFile() as f:
        return os.dup(f.fileno())


def _fork_child(fn: Callable[[list[_T]], list[_R]], part: list[_T]) -> tuple[int, int]:
    fd = _result_file()
    try:
        pid = os.fork()
    except BaseException:
        os.close(fd)
        raise
    if pid:
        return pid, fd
    # The child: compute, write, and leave by os._exit, never back into the parent's code
    # (no atexit handlers, no flush of the parent's buffered output).
    code = 1
    try:
        with os.fdopen(fd, "wb") as result:
            try:
                # Pickled straight into the file, never whole in this process's memory.
                pickle.dump((True, fn(part)), result, pickle.HIGHEST_PROTOCOL)
                code = 0
            except BaseException:  # written for the parent, which raises it
                pickle.dump((False, traceback.format_exc()), result)
    finally:
        os._exit(code)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def stat_many(store: Store, keys: list[str], jobs: int = 1,
              processes: int = 1) -> list[Stat | None]:
    """``store.stat`` of each key, in order; None where it is absent or cannot be stat'd.

    Tens of thousands of independent calls (a plan's candidates, -m's untagged revisions):
    shared among ``processes`` processes on a store they can read (``Store.forkable``), each
    in ``jobs`` threads once the store makes them wait."""
    def share(part: list[str]) -> list[Stat | None]:
        # A task per slice of keys, not per key, where a stat costs less than a pool's
        # bookkeeping (a disk); a request at a time where each one waits (an object store).
        size = 1 if store.waits else 256
        slices = [part[i:i + size] for i in range(0, len(part), size)]
        pool = IOPool(jobs, store.waits)
        try:
            done = pool.map(lambda keys: [stat_quietly(store, k) for k in keys], slices)
            return [st for stats in done for st in stats]
        finally:
            pool.close()

    if processes <= 1 or not store.forkable or len(keys) < FORK_MIN_STATS:
        return share(keys)
    return fork_map(share, keys, processes)


#: Fewer stats than this are made in this process: a fork (and sending the results back)
#: costs about what a few thousand stats of a warm disk do.
FORK_MIN_STATS = 4096
