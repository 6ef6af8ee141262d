"""Run regstore on an S3 store and kill it with SIGKILL before its k-th deletion request.

``python -m tests.support.s3crash K -- regstore-args...`` counts the ``DeleteObjects``
requests the run makes and sends itself SIGKILL just before the K-th one; with K = 0 it runs to
the end and prints the count on stderr as ``deletions: N``. A sweep of an S3 store removes
nothing but through those requests, so this kills it between any two of its removals.

A killed run cannot release its S3 lock; the lock goes stale when it is not renewed, after
:data:`STALE_AFTER` seconds here (5 minutes in regstore), so that the next run can take it
over without the test waiting minutes.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


HEARTBEAT = 0.5
STALE_AFTER = 2.0


def main() -> int:
    limit = int(sys.argv[1])
    argv = sys.argv[3:]
    count = 0
    import regstore.lock as lock
    import regstore.store.s3 as s3

    lock.HEARTBEAT, lock.STALE_AFTER = HEARTBEAT, STALE_AFTER

    real_call = s3.S3Store._call

    def counted(self: Any, operation: str, key: str, **params: Any) -> Any:
        nonlocal count
        if operation == "delete_objects":
            count += 1
            if count == limit:
                os.kill(os.getpid(), signal.SIGKILL)
        return real_call(self, operation, key, **params)

    s3.S3Store._call = counted  # type: ignore[method-assign]
    from regstore.cli import main as regstore_main

    code = regstore_main(argv)
    print(f"deletions: {count}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
