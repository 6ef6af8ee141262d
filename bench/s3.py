"""Time regstore against the registry's own garbage collector on an S3 store (Ceph's radosgw).

A store of ``--blobs`` blobs is written by ``bench.generate`` (the registry's exact layout) and
uploaded into a bucket of a single-node Ceph with radosgw on 127.0.0.1, which
``scripts/ceph-s3.sh`` starts and stops (by PID) for this run. Then, on the same bucket, in
turns (regstore, registry, regstore, ...), ``--runs`` times each:

* ``regstore gc --dry-run --min-age 0 --json`` (the bucket is brand new, so the grace period
  would protect everything; the registry's GC has none);
* ``docker-registry garbage-collect --dry-run`` (2.8.2, its s3 driver, without
  ``AWS_CA_BUNDLE`` in its environment, with which it panics at start).

Both must name the same blobs, which the report checks. Wall time, CPU time and peak RSS of
each child come from ``bench.run.timed``; the medians are compared.

regstore runs from compiled bytecode, as an installed regstore does (pip compiles it when it
installs): its modules are compiled once into a cache in the scratch directory before the
runs, and each run is started with that cache and without ``PYTHONDONTWRITEBYTECODE``, which
would otherwise make every run compile regstore's sources again (about 0.05 s of CPU).
``--no-bytecode-cache`` runs it as the environment says instead. ``--client boto3`` makes
regstore use boto3 for every request (``REGSTORE_S3_CLIENT=boto3``) rather than its light
client, to compare the two.

radosgw on the same machine answers in about a millisecond; an S3 service across a network
takes tens. ``--latency MS`` puts a relay between both tools and radosgw (on 127.0.0.1 too)
that holds every request for MS milliseconds before passing it on, so the same comparison can be
made at a network's latency; the report says which it is. Results go to stdout as
Markdown and, with ``--json FILE``, as JSON. Usage, from the repository's root:
``python -m bench.s3 --blobs 3000 --runs 3``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

from bench.generate import V2_PREFIX, generate
from bench.run import ROOT, Series, compiled_bytecode, registry_verdict, timed

ROOTDIRECTORY = "/bench"
TARGET_SPEEDUP = 10.0


def upload(client: Any, bucket: str, root: Path, rootdirectory: str, jobs: int = 16) -> int:
    """Put every file of the store at ``root`` into ``bucket`` under ``rootdirectory``, as the
    registry's s3 driver keys them. Returns the number of objects."""
    base = root / V2_PREFIX
    files = [Path(d) / f for d, _, names in os.walk(base) for f in names]
    prefix = rootdirectory.strip("/") + "/" + V2_PREFIX + "/"

    def put(path: Path) -> None:
        client.put_object(Bucket=bucket, Key=prefix + path.relative_to(base).as_posix(),
                          Body=path.read_bytes())

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(put, files))
    return len(files)


def write_config(path: Path, endpoint: str, access: str, secret: str, bucket: str) -> Path:
    """A read-only registry config.yml for the bucket (json strings are YAML scalars)."""
    path.write_text(f"""version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: true
storage:
  s3:
    accesskey: {json.dumps(access)}
    secretkey: {json.dumps(secret)}
    region: us-east-1
    regionendpoint: {json.dumps(endpoint)}
    bucket: {json.dumps(bucket)}
    rootdirectory: {json.dumps(ROOTDIRECTORY)}
    secure: false
    v4auth: true
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: true
http:
  addr: 127.0.0.1:5000
""")
    return path


class Relay:
    """A TCP relay on 127.0.0.1 that delays what clients send by ``delay`` seconds (each HTTP
    request, on a kept-alive connection), and passes answers back at once."""

    def __init__(self, upstream: str, delay: float) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.delay = delay
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.AbstractServer | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> str:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self.loop).result()
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       delay: float) -> None:
            try:
                while chunk := await src.read(65536):
                    if delay:
                        await asyncio.sleep(delay)
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass  # one side went away: the other is closed below
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, self.delay), pump(up_reader, writer, 0))

    def stop(self) -> None:
        if self.server is not None:
            self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


def regstore_command(pycache: Path | None, client: str) -> list[str]:
    """How regstore is started: with its bytecode compiled into ``pycache`` first (None: as
    the environment says), and ``REGSTORE_S3_CLIENT=boto3`` for ``client`` "boto3"."""
    env = ["env", "-u", "REGSTORE_S3_CLIENT"]
    if pycache is not None:
        env += compiled_bytecode(pycache)[1:]
    if client == "boto3":
        env.append("REGSTORE_S3_CLIENT=boto3")
    return [*env, sys.executable, "-m", "regstore"]


def measure(config: Path, runs: int, jobs: int | None, registry: str, tmp: Path,
            say: Callable[[str], None], timeout: float,
            regstore: Sequence[str]) -> dict[str, Any]:
    regstore_argv = [*regstore, "gc", "--dry-run", "--min-age", "0",
                     "--json", *(["--jobs", str(jobs)] if jobs else []), str(config)]
    registry_argv = ["env", "-u", "AWS_CA_BUNDLE", registry, "garbage-collect", "--dry-run",
                     str(config)]
    series = {"regstore": Series(regstore_argv), "registry": Series(registry_argv)}
    for i in range(runs):
        for tool, s in series.items():
            out, err = tmp / f"{tool}-{i}.out", tmp / f"{tool}-{i}.err"
            run = timed(s.argv, out, err, timeout)
            s.runs.append(run)
            say(f"  {tool} run {i + 1}: {run.seconds:.2f}s, {run.peak_rss / 2**20:.0f} MiB, "
                f"exit {run.exit_code}")
    report = json.loads((tmp / "regstore-0.out").read_text())
    ours = {i["digest"] for i in report.get("items", []) if i["kind"] == "blob"}
    real = registry_verdict((tmp / "registry-0.out").read_text(errors="replace"),
                            (tmp / "registry-0.err").read_text(errors="replace"),
                            series["registry"].runs[0].exit_code)
    return {
        "regstore": series["regstore"].summary(), "registry": series["registry"].summary(),
        "speedup": series["registry"].median / series["regstore"].median,
        "blobs_total": report.get("summary", {}).get("blobs_total"),
        "regstore_eligible": len(ours), "registry_eligible": len(real.eligible),
        "agree": ours == real.eligible and real.ok and report.get("exit_code") == 0,
        "registry_error": real.error,
    }


def markdown(doc: dict[str, Any]) -> str:
    r = doc["result"]
    latency = (f"every request held {doc['latency_ms']:g} ms by a relay, as across a network"
               if doc["latency_ms"] else "no added latency")
    how = (f"regstore's {doc['client']} client, "
           + ("from cached bytecode" if doc["bytecode_cache"] else "bytecode as the "
              "environment says"))
    lines = [
        f"S3 store: {doc['blobs']} blobs ({doc['objects']} objects) in a bucket of a "
        f"single-node Ceph {doc['ceph']} (radosgw on 127.0.0.1, objects in memory; "
        f"{latency}); {how}; {doc['runs']} runs each, alternating; {doc['machine']}; "
        f"load average {doc['load_before']:.2f} before, {doc['load_after']:.2f} after.",
        "",
        "| tool | median | min | max | peak RSS |",
        "|---|---|---|---|---|",
    ]
    for tool in ("regstore", "registry"):
        s = r[tool]
        lines.append(f"| {tool} | {s['median_s']:.2f} s | {s['min_s']:.2f} s | "
                     f"{s['max_s']:.2f} s | {s['peak_rss_bytes'] / 2**20:.0f} MiB |")
    lines += [
        "",
        f"regstore is **{r['speedup']:.1f}×** faster (target: {TARGET_SPEEDUP:.0f}×, "
        f"{'met' if r['speedup'] >= TARGET_SPEEDUP else 'NOT met'}). Both name "
        f"{r['regstore_eligible']} of {r['blobs_total']} blobs: "
        f"{'they agree' if r['agree'] else 'THEY DISAGREE (registry: ' + str(r['registry_eligible']) + ')'}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.s3", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blobs", type=int, default=3000, help="blobs in the store (default "
                                                                "%(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="runs per tool (default 3)")
    parser.add_argument("--jobs", type=int, metavar="N",
                        help="pass --jobs N to regstore (default: regstore's own default)")
    parser.add_argument("--registry", default=shutil.which("docker-registry") or
                        "/usr/bin/docker-registry", help="the registry binary")
    parser.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS")
    parser.add_argument("--latency", type=float, default=0.0, metavar="MS",
                        help="hold every request this long on its way to radosgw (default 0)")
    parser.add_argument("--client", choices=("light", "boto3"), default="light",
                        help="the S3 client regstore uses (default: its light client; boto3 "
                             "sets REGSTORE_S3_CLIENT=boto3)")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="run regstore as the environment says (e.g. compiling its sources "
                             "on every run under PYTHONDONTWRITEBYTECODE=1)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    sys.path.insert(0, str(ROOT))
    from tests.support.ceph import Ceph

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="regstore-bench-s3-") as scratch:
        work = Path(scratch)
        regstore = regstore_command(None if args.no_bytecode_cache else work / "pycache",
                                    args.client)
        ceph = Ceph(work / "ceph")
        say("starting Ceph (scripts/ceph-s3.sh)")
        ceph.start()
        try:
            say(f"generating a store of {args.blobs} blobs")
            generate(work / "store", args.blobs, args.seed)
            bucket = ceph.new_bucket("bench")
            started = time.monotonic()
            objects = upload(ceph.client(), bucket, work / "store", ROOTDIRECTORY)
            say(f"uploaded {objects} objects in {time.monotonic() - started:.1f}s")
            relay = Relay(ceph.endpoint, args.latency / 1000) if args.latency else None
            endpoint = relay.start() if relay else ceph.endpoint
            try:
                config = write_config(work / "config.yml", endpoint, ceph.access_key,
                                      ceph.secret_key, bucket)
                (work / "runs").mkdir()
                result = measure(config, args.runs, args.jobs, args.registry, work / "runs",
                                 say, args.timeout, regstore)
            finally:
                if relay:
                    relay.stop()
        finally:
            ceph.stop()
    version = os.popen("ceph --version 2>/dev/null").read().split()
    doc = {
        "blobs": args.blobs, "objects": objects, "runs": args.runs, "latency_ms": args.latency,
        "client": args.client, "bytecode_cache": not args.no_bytecode_cache,
        "load_before": load_before, "load_after": os.getloadavg()[0],
        "ceph": version[2] if len(version) > 2 else "?",
        "machine": f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, "
                   f"Python {platform.python_version()}",
        "command": "python -m bench.s3 " + " ".join(argv if argv is not None else sys.argv[1:]),
        "result": result,
    }
    print(markdown(doc), end="")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0 if result["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
