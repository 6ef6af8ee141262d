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
from typing import Any, Callable, Iterable, Iterator, TypeVar

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
             processes: int, meanwhile: Callable[[], object] | None = None,
             here: bool = True) -> list[_R]:
    """``fn`` over ``items`` in ``processes`` processes, results in order: this one and
    ``processes - 1`` forked children take chunks of the items from a queue they share until
    none is left, and map each chunk with ``fn``, which takes a list and returns the list of
    its results; a child's results come back pickled, through a file in memory
    (:func:`_result_file`).

    Listing and parsing a large store is Python work that threads cannot spread over cores;
    processes can. Fixed shares ended apart: on a shared machine one process is often slowed
    by a tenth or more, and the other then waited for it (50-150 ms of a 100k-blob gc's two
    phases); from a queue, a process that is slowed takes fewer chunks, and chunks shrink as
    the work runs out (:func:`_chunks`), so all end within a small chunk of each other.

    ``fn`` may be a closure (a child has the parent's memory) and is called once per chunk:
    a thread pool it needs is best one per process (:class:`PoolPerProcess`); one inherited
    across a fork has no threads. A child that fails raises :class:`ForkError` here; on any
    error every child is killed and reaped. With one process, no ``os.fork``, or too few items
    to be worth a fork, it runs inline, ``fn`` called once.

    A ``range`` of items is handed out as ranges: a chunk then touches no object of the
    parent's (see :func:`regstore.mark.ManifestCache.prefetch`).

    ``meanwhile``, other work of this process, runs here first while the children take
    chunks (this process then takes what is left). Inline, it runs before ``fn``. Should it
    fail, the children are killed and its error raised. Without ``here``, this process takes
    no chunk: ``processes`` children take them all, and what ``fn`` makes and lets go stays
    out of this process's memory.
    """
    items = items if isinstance(items, range) else list(items)
    processes = min(processes, len(items) // 2)
    if processes <= 1 or not hasattr(os, "fork"):
        if meanwhile is not None:
            meanwhile()
        return fn(items)
    chunks = _chunks(len(items), processes)
    # The queue: each chunk's number, four bytes, in a pipe written whole before any fork
    # (a few hundred bytes at most; a pipe holds 64 KiB). A read of four bytes takes one
    # number, whole, from whichever process reads; an empty pipe whose writing end is closed
    # reads as its end.
    queue, writing = os.pipe()
    try:
        os.write(writing, b"".join(k.to_bytes(4, "little") for k in range(len(chunks) - 1)))
    finally:
        os.close(writing)

    def take() -> Iterator[tuple[int, list[_R]]]:
        while number := os.read(queue, 4):
            k = int.from_bytes(number, "little")
            yield k, fn(items[chunks[k]:chunks[k + 1]])

    children: list[tuple[int, int]] = []
    parts: list[tuple[int, list[_R]]] = []
    try:
        for _ in range(processes if not here else processes - 1):
            children.append(_fork_child(take))
        if meanwhile is not None:
            meanwhile()
        if here:
            parts += take()
        while children:
            pid, fd = children[0]
            _, status = os.waitpid(pid, 0)
            children.pop(0)
            parts += _read_result(fd, status)
    finally:
        os.close(queue)
        for pid, fd in children:
            os.close(fd)
            _kill(pid)
    out: list[_R] = [None] * len(items)  # type: ignore[list-item]
    for k, results in parts:
        out[chunks[k]:chunks[k + 1]] = results
    return out


#: The smallest chunk of items fork_map hands out.
MIN_CHUNK = 16


def _chunks(n: int, processes: int) -> list[int]:
    """The bounds of the chunks of ``n`` items for :func:`fork_map`: each a share of what is
    left (divided among twice the processes), never below :data:`MIN_CHUNK` items; about
    ``2 * processes * ln(n / MIN_CHUNK)`` chunks in all, so that the last ones are small."""
    bounds = [0]
    while bounds[-1] < n:
        left = n - bounds[-1]
        bounds.append(bounds[-1] + max(MIN_CHUNK, -(-left // (2 * processes))))
    bounds[-1] = n
    return bounds


class PoolPerProcess:
    """An :class:`IOPool` for the process that asks for it, made on its first request there:
    a function that :func:`fork_map` calls once per chunk keeps one pool (and what it judged
    of the store) across its chunks, and a child never gets its parent's pool, whose threads
    a fork does not copy."""

    def __init__(self, jobs: int, waits: bool = False) -> None:
        self.jobs, self.waits = jobs, waits
        self._pool: IOPool | None = None
        self._pid = 0

    def get(self) -> IOPool:
        if self._pool is None or self._pid != os.getpid():
            self._pool, self._pid = IOPool(self.jobs, self.waits), os.getpid()
        return self._pool

    def close(self) -> None:
        """End this process's pool, if it made one."""
        if self._pool is not None and self._pid == os.getpid():
            self._pool.close()
            self._pool = None


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


def _read_result(fd: int, status: int) -> list[tuple[int, Any]]:
    """The chunks a child that ended with ``status`` wrote into ``fd`` (see _fork_child)."""
    parts = []
    os.lseek(fd, 0, os.SEEK_SET)  # the child's writes moved the offset they share
    with os.fdopen(fd, "rb") as result:
        try:
            # Unpickled as it is read: the whole payload is never held as bytes too.
            while (frame := pickle.load(result))[0] == "chunk":
                parts.append(frame[1:])
            failure = frame[1] if frame[0] == "failed" else None
        except Exception as exc:  # cut short: the child died while writing it
            failure = f"its result could not be read ({exc!r})"
    if failure is not None or status != 0:
        raise ForkError(f"a worker process ended with status {status}: {failure}")
    return parts


def _fork_child(work: Callable[[], Iterator[tuple[int, Any]]]) -> tuple[int, int]:
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
    # Each chunk's results are written as soon as they are there (the parent reads them
    # once this child has ended): the last chunk's are all that is left to write at the end.
    code = 1
    try:
        with os.fdopen(fd, "wb") as result:
            try:
                for k, results in work():
                    pickle.dump(("chunk", k, results), result, pickle.HIGHEST_PROTOCOL)
                pickle.dump(("done",), result)
                code = 0
            except BaseException:  # written for the parent, which raises it
                pickle.dump(("failed", traceback.format_exc()), result)
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
    pools = PoolPerProcess(jobs, store.waits)

    def share(part: list[str]) -> list[Stat | None]:
        # A task per slice of keys, not per key, where a stat costs less than a pool's
        # bookkeeping (a disk); a request at a time where each one waits (an object store).
        size = 1 if store.waits else 256
        slices = [part[i:i + size] for i in range(0, len(part), size)]
        done = pools.get().map(lambda keys: [stat_quietly(store, k) for k in keys], slices)
        return [st for stats in done for st in stats]

    try:
        if processes <= 1 or not store.forkable or len(keys) < FORK_MIN_STATS:
            return share(keys)
        return fork_map(share, keys, processes)
    finally:
        pools.close()


#: Fewer stats than this are made in this process: a fork (and sending the results back)
#: costs about what a few thousand stats of a warm disk do.
FORK_MIN_STATS = 4096
