"""The least work any Python gc of a store must do, timed: a floor under regstore's times.

It lists every repository's revisions (and looks for each one's link), tags and layer
links, reads each tag's ``current`` link, lists each tag's history (``index/``, with
``--history``: a gc with ``-m`` needs it to remove the history entries of the manifests it
removes), lists the blob prefixes, and reads and parses (``json.loads``) every manifest
revision once, sharing the work among ``--processes`` processes as regstore shares its own
(:func:`regstore.pool.fork_map`). It keeps nothing, marks nothing, plans nothing, stats no
candidate and writes no report: whatever a real gc does comes on top. Its wall time, plus the
interpreter's start (``python -c pass``), is a time no gc written in Python can beat on this
machine; bench/README.md compares it with the targets. Usage:
``python -m bench.floor STORE [--history] [--processes N] [--runs N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Sequence

from regstore.pool import fork_map

V2 = "docker/registry/v2"
PARTS = ("_manifests", "_layers", "_uploads")


def repositories(top: str) -> list[str]:
    """Every repository directory below ``top`` (a directory holding one of the parts)."""
    found, stack = [], [top]
    while stack:
        here = stack.pop()
        names = os.listdir(here)
        if any(part in names for part in PARTS):
            found.append(here)
        stack += [f"{here}/{n}" for n in names if not n.startswith("_")]
    return found


def listed(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def scan(repository: str, history: bool) -> list[str]:
    """A repository's revisions (each whose link is there: the registry deletes a manifest
    by its link alone), its tags' links read (and histories listed), its layer links listed;
    the revisions' hashes returned."""
    manifests = f"{repository}/_manifests"
    revisions = [h for h in listed(f"{manifests}/revisions/sha256")
                 if os.path.lexists(f"{manifests}/revisions/sha256/{h}/link")]
    for tag in listed(f"{manifests}/tags"):
        with open(f"{manifests}/tags/{tag}/current/link", "rb") as link:
            link.read()
        if history:
            listed(f"{manifests}/tags/{tag}/index/sha256")
    listed(f"{repository}/_layers/sha256")
    return revisions


def floor(store: Path, history: bool, processes: int) -> dict[str, float]:
    """One pass over ``store``; the seconds each step took and in all."""
    v2 = f"{store}/{V2}"
    start = time.perf_counter()
    repos = repositories(f"{v2}/repositories")
    listed_at = time.perf_counter()
    scanned = fork_map(lambda part: [scan(repo, history) for repo in part], repos, processes)
    revisions = [h for hashes in scanned for h in hashes]
    scanned_at = time.perf_counter()
    for prefix in listed(f"{v2}/blobs/sha256"):
        listed(f"{v2}/blobs/sha256/{prefix}")
    blobs_at = time.perf_counter()

    def parse(hashes: list[str]) -> list[None]:
        for h in hashes:
            with open(f"{v2}/blobs/sha256/{h[:2]}/{h}/data", "rb") as data:
                json.loads(data.read())
        return [None] * len(hashes)

    fork_map(parse, sorted(set(revisions)), processes)
    end = time.perf_counter()
    return {"repositories": listed_at - start, "scan": scanned_at - listed_at,
            "blobs": blobs_at - scanned_at, "manifests": end - blobs_at, "total": end - start,
            "repository_count": len(repos), "manifest_count": len(set(revisions))}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", type=Path, help="a store's root (the directory of docker/)")
    parser.add_argument("--history", action="store_true",
                        help="list the tags' histories too, as a gc with -m must")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    if not (args.store / V2 / "repositories").is_dir():
        print(f"floor: {args.store} holds no {V2}/repositories", file=sys.stderr)
        return 2
    runs = [floor(args.store, args.history, max(1, args.processes)) for _ in range(args.runs)]
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"{int(median['repository_count']):,} repositories, "
          f"{int(median['manifest_count']):,} manifests, {args.processes} processes, "
          f"{'with' if args.history else 'without'} the tags' histories, median of "
          f"{args.runs}: {median['total']:.3f} s (repositories {median['repositories']:.3f}, "
          f"their contents {median['scan']:.3f}, blob prefixes {median['blobs']:.3f}, "
          f"manifests {median['manifests']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
