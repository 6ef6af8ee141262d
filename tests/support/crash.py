"""Run regstore and kill it with SIGKILL at the k-th filesystem change it makes.

``python -m tests.support.crash K -- regstore-args...`` counts every rename, unlink, rmdir,
mkdir and fsync the run makes and sends itself SIGKILL just before the K-th one; with K = 0 it
runs to the end and prints the count on stderr as ``changes: N``. This is how a test kills a
sweep at every point of its work, not only where a timer happens to fall.
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> int:
    limit = int(sys.argv[1])
    argv = sys.argv[3:]
    count = 0

    def counted(fn):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal count
            count += 1
            if count == limit:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)
        return wrapper

    for name in ("rename", "unlink", "rmdir", "mkdir", "fsync"):
        setattr(os, name, counted(getattr(os, name)))
    from regstore.cli import main as regstore_main

    code = regstore_main(argv)
    print(f"changes: {count}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
