"""The command line: parse, check, run the algorithms, print, pick the exit code.

Nothing below this module prints or exits; this module is the only one that imports tqdm.
"""

from __future__ import annotations

import argparse
import ctypes
import gc as collector
import json
import re
import shutil
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, Sequence, TextIO

from regstore import __version__
from regstore.config import ConfigError, RegistryConfig, config_for_root, default_config_path, \
    load_config, parse_age, storage_backend
from regstore.errors import EXIT_CONFIG, EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK, \
    NotReadOnly, RegstoreError, SafetyValve, StoreNotFound
from regstore.findings import ERROR, WARNING, Finding
from regstore.holding import Holding, recover, restore_runs, runs_in
from regstore.inventory import Inventory, list_blobs, sift_blobs, take_inventory
from regstore.layout import is_digest, is_upload_id
from regstore.lock import lock_for
from regstore.metrics import gc_metrics, render, run_metrics, verify_metrics, write_atomically
from regstore.mark import late_references, mark
from regstore.pool import processes_for
from regstore.quarantine import Quarantine
from regstore.report import JSON_FORMAT, apply_lines, human_bytes, finding_line, gc_json, plan_lines, plan_summary
from regstore.report import verify_finding_lines, verify_json, verify_summary
from regstore.state import StateCorrupt, VerifyState, cache_state_path, default_state_path, \
    load_state, save_state
from regstore.store.base import Store, StoreError
from regstore.store.filesystem import FilesystemStore
from regstore.store.s3 import S3Settings, S3Store
from regstore.usage import explain, usage
from regstore.sweep import BLOB, PlanOptions, SweepPlan, apply_plan, build_plan, upload_started
from regstore.verify import KINDS as FINDING_KINDS, quarantine_corrupt, verify

EXIT_CODES = """\
exit codes:
  0    success (verify: no errors; hints and warnings allowed)
  1    verify found errors; gc could not remove some items (they are listed)
  2    usage error
  3    configuration or store problem (no config, bad YAML, unsupported driver, no store)
  4    refused: the registry is not in read-only mode (see --force)
  5    another regstore run holds the store's lock
  6    mark incomplete: a live manifest or part of the tree could not be read; nothing swept
  7    safety valve: the plan would remove an abnormal share of the blobs; nothing removed
  130  interrupted
"""

GC_DESCRIPTION = """\
Mark every blob reachable from a live manifest of any repository (configs, layers, the
children of manifest lists and OCI indexes to any depth, OCI referrers), then report
(--dry-run) or remove the rest: orphan blobs, the _layers links of blobs nothing live needs,
and with --delete-untagged the manifests no tag reaches. A drop-in for the registry's own
`registry garbage-collect [--dry-run] [--delete-untagged] CONFIG`.

A real sweep needs the registry in read-only mode
(storage.maintenance.readonly.enabled: true) or stopped (--force). Nothing is swept when a
live manifest cannot be read: the run stops with exit code 6 and lists what to fix.
"""

GC_EXAMPLES = """\
examples:
  regstore gc --dry-run /etc/docker/registry/config.yml
  regstore gc -m /etc/docker/registry/config.yml       # registry in read-only mode
  regstore gc --force --root /var/lib/registry          # registry stopped
  regstore gc --dry-run --json config.yml | jq .summary
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="regstore", description="Keep a registry's storage healthy, offline.",
                     epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"regstore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gc = commands.add_parser("gc", help="mark and sweep: remove what no live manifest reaches",
                             description=GC_DESCRIPTION, epilog=GC_EXAMPLES + "\n" + EXIT_CODES,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    _store_arguments(gc)
    gc.add_argument("-d", "--dry-run", action="store_true",
                    help="print what would be removed and change nothing")
    gc.add_argument("-m", "--delete-untagged", action="store_true",
                    help="also remove manifests no tag reaches (children of a tagged index and "
                         "referrers of a live image stay)")
    gc.add_argument("--force", action="store_true",
                    help="sweep although the config does not put the registry in read-only "
                         "mode: only when the registry is stopped, or pushes may lose layers")
    gc.add_argument("--ignore-broken-manifests", action="store_true",
                    help="sweep even when live manifests are missing, unreadable or invalid. "
                         "RISK: blobs only those manifests reference are removed, so repairing "
                         "them later (e.g. restoring a manifest from a backup) will not bring "
                         "their layers back")
    gc.add_argument("--min-age", type=_age, metavar="AGE",
                    help="grace period: keep anything written less than AGE ago (30m, 2h, 7d; "
                         f"0 for none; default {DEFAULT_MIN_AGE}). Given explicitly and not 0, "
                         "it lets a sweep run while the registry accepts pushes")
    gc.add_argument("--uploads-older-than", type=_age, metavar="AGE",
                    help="remove uploads started more than AGE ago (default: the config's "
                         "storage.maintenance.uploadpurging.age, 168h)")
    gc.add_argument("--keep-uploads", action="store_true", help="remove no upload")
    gc.add_argument("--delete-empty-repos", action="store_true",
                    help="remove repositories the sweep leaves with no manifest, tag, layer "
                         "link or upload")
    gc.add_argument("--quarantine", type=Path, metavar="DIR",
                    help="move what the sweep removes into DIR (same filesystem) instead of "
                         "deleting it; `regstore restore DIR` puts it back")
    gc.add_argument("--max-delete-fraction", type=_fraction, metavar="F",
                    help=f"stop before removing anything when the plan would remove more than "
                         f"this share of the blobs (default {DEFAULT_MAX_DELETE_FRACTION}); a "
                         "plan removing every blob of a store that has tags stops unless F is 1")
    _output_arguments(gc)
    _cron_arguments(gc)

    restore = commands.add_parser(
        "restore", help="put back what `gc --quarantine DIR` moved into DIR",
        description="Put back every item a quarantined sweep moved into DIR, byte for byte, "
                    "where nothing has taken its place since; then empty DIR of those sweeps.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    restore.add_argument("quarantine", type=Path, metavar="DIR")
    _store_arguments(restore)
    _output_arguments(restore)

    purge = commands.add_parser(
        "purge-quarantine", help="delete quarantined sweeps older than an age",
        description="Delete, for good, the sweeps in a quarantine directory that are older "
                    "than --older-than.", epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    purge.add_argument("quarantine", type=Path, metavar="DIR")
    purge.add_argument("--older-than", type=_age, required=True, metavar="AGE")
    _output_arguments(purge)
    _verify_parser(commands)

    du = commands.add_parser(
        "du", help="storage used per repository: reachable, unique, shared, freed by gc -m",
        description=DU_DESCRIPTION, epilog=DU_EXAMPLES + "\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _store_arguments(du)
    du.add_argument("--sort", choices=("reachable", "unique", "shared", "freed", "name"),
                    default="reachable", help="order of the rows (default: reachable, largest "
                                              "first)")
    du.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    _output_arguments(du)

    why = commands.add_parser(
        "explain", help="why a blob or manifest is kept, or why it would go",
        description=EXPLAIN_DESCRIPTION, epilog=EXPLAIN_EXAMPLES + "\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    why.add_argument("digest", metavar="DIGEST", help="a blob or manifest digest (sha256:...)")
    _store_arguments(why)
    _output_arguments(why)
    return parser


DU_DESCRIPTION = """\
Show where the storage goes, per repository, in bytes of blob data:

  reachable  what the repository's live manifests (every linked revision and tag) reach,
             manifests, configs and layers included
  unique     reached by this repository only: what deleting it would free
  shared     reached by this repository and at least one other
  freed -m   reached here but by nothing live under `gc -m`: what -m would free

Unique bytes of all repositories plus the shared blobs counted once are the store's
reachable bytes; the rest is orphan data that `regstore gc` removes. Reads only.
"""

DU_EXAMPLES = """\
examples:
  regstore du /etc/docker/registry/config.yml
  regstore du --sort unique --root /var/lib/registry | head
  regstore du --csv config.yml > usage.csv
"""

EXPLAIN_DESCRIPTION = """\
Say why `regstore gc` keeps a blob or manifest: every repository, tag (or untagged
manifest) and chain of manifests that reaches it, for a plain gc and for gc -m; or, when
nothing does, that it would go and which layer links name it. Reads only.
"""

EXPLAIN_EXAMPLES = """\
examples:
  regstore explain sha256:4496c7e8... /etc/docker/registry/config.yml
  regstore explain --json sha256:4496c7e8... --root /var/lib/registry
"""


DEFAULT_MIN_AGE = "1h"
DEFAULT_MAX_DELETE_FRACTION = 0.75
# How long a sweep alongside pushes waits for requests in flight before its last look.
SETTLE_SECONDS = 2.0
# Upload activity this recent means the registry is writing, whatever the config says.
LIVE_UPLOAD_WINDOW = 15 * 60


def _age(text: str) -> float:
    try:
        return parse_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share between 0 and 1")
    return value


def _store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", metavar="CONFIG", type=Path,
                   help="the registry's config.yml (default: $REGISTRY_CONFIGURATION_PATH, "
                        "then /etc/docker/registry/config.yml); REGISTRY_* environment "
                        "overrides apply as in the registry")
    p.add_argument("--root", type=Path, metavar="DIR",
                   help="a filesystem storage root (the directory holding docker/), instead "
                        "of a config")
    p.add_argument("--jobs", type=int, metavar="N",
                   help=f"threads for reading (default {DEFAULT_JOBS}; {DEFAULT_S3_JOBS} on an "
                        "S3 store, where each request waits on the network); listing and "
                        "manifest reads use them only once the store makes regstore wait "
                        "(a cold or network disk), not when it answers from memory. On a "
                        "filesystem the repositories are also listed in up to one process per "
                        "core (at most N); --jobs 1 keeps regstore to one thread and one core")


def _cron_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics-file", type=Path, metavar="PATH",
                   help="write Prometheus metrics of the run to PATH (atomically), for "
                        "node_exporter's textfile collector")
    p.add_argument("--log-file", type=Path, metavar="PATH",
                   help="append every line of the run, timestamped, to PATH")


def _output_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print nothing when all is well; problems still go to stderr")
    p.add_argument("--json", action="store_true",
                   help="print one JSON report on stdout (format in the README)")


class Output:
    """Where text goes: reports to stdout, problems to stderr, progress bars on a terminal,
    and every line, timestamped, to the log file when there is one. A command leaves its
    machine report in ``doc``; main() prints it for --json and turns it into metrics."""

    def __init__(self, quiet: bool, as_json: bool, out: TextIO, err: TextIO,
                 log: TextIO | None = None, kept: list[object] | None = None) -> None:
        self.quiet = quiet
        self.as_json = as_json
        self.out = out
        self.err = err
        self.log = log
        self.doc: dict[str, object] | None = None
        # A command's large values (a gc's inventory, mark and plan), put here to outlive it:
        # see run().
        self.kept: list[object] = [] if kept is None else kept

    def say(self, line: str) -> None:
        self.to_log(line)
        if not self.quiet and not self.as_json:
            self._print(line, self.out)

    def problem(self, line: str) -> None:
        self.to_log(line)
        if not self.as_json:
            self._print(line, self.err)

    def _print(self, line: str, stream: TextIO) -> None:
        # A reader that went away (`| head`) ends what it reads, not the run: the rest of
        # the lines for it are dropped (the log file still gets them), the exit code is the
        # run's own.
        try:
            print(line, file=stream)
        except BrokenPipeError:
            _reader_gone(stream)

    def to_log(self, line: str) -> None:
        if self.log is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            self.log.write(f"{stamp} regstore[{os.getpid()}]: {line}\n")
            self.log.flush()

    @contextmanager
    def progress(self, desc: str, unit: str = "it") -> Iterator[Callable[[int], None]]:
        if self.quiet or self.as_json or not self.err.isatty():
            yield lambda n: None
            return
        from tqdm import tqdm

        with tqdm(desc=desc, unit=unit, file=self.err, leave=False) as bar:
            yield bar.update


def _reader_gone(stream: TextIO) -> None:
    """After a write to ``stream`` met a closed pipe (its reader, `| head`, went away, which is
    not an error of the run): point the process's stdout or stderr at devnull, so that later
    writes and the final flush drop their lines quietly."""
    if stream is sys.stdout or stream is sys.stderr:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def resolve_config(args: argparse.Namespace) -> RegistryConfig:
    if args.root is not None:
        if args.config is not None:
            raise RegstoreError("give either CONFIG or --root, not both")
        return config_for_root(args.root)
    return load_config(args.config or default_config_path(os.environ))


DEFAULT_JOBS = 8
DEFAULT_S3_JOBS = 32


def open_store(cfg: RegistryConfig, writable: bool, jobs: int | None = None) -> Store:
    """The store ``cfg`` names, on its backend: a filesystem root or an S3 bucket."""
    where = storage_backend(cfg)
    if isinstance(where, S3Settings):
        return _open_s3(cfg, where, writable, jobs or DEFAULT_S3_JOBS)
    root = where
    store = FilesystemStore(root, writable=writable)
    if not root.is_dir():
        raise StoreNotFound(f"storage root {root} does not exist or is not a directory: check "
                            f"storage.filesystem.rootdirectory{_from(cfg)}")
    if not store.exists():
        raise StoreNotFound(f"{root} does not look like a registry store: there is no "
                            f"docker/registry/v2 below it. Point at the directory that holds "
                            f"docker/ (storage.filesystem.rootdirectory{_from(cfg)})")
    return store


def _open_s3(cfg: RegistryConfig, settings: S3Settings, writable: bool, jobs: int) -> S3Store:
    try:
        store = S3Store.from_settings(settings, writable=writable, jobs=jobs)
        found = store.exists()
    except ImportError:
        raise RegstoreError("the s3 driver needs boto3: pip install boto3") from None
    except StoreError as exc:
        raise StoreNotFound(f"cannot reach the store s3://{settings.bucket}/"
                            f"{settings.prefix()} ({exc.message}): check storage.s3 (bucket, "
                            f"region, regionendpoint, credentials){_from(cfg)}") from None
    if not found:
        raise StoreNotFound(f"s3://{settings.bucket} holds no registry store under "
                            f"{settings.prefix()!r}: check storage.s3.bucket and "
                            f"storage.s3.rootdirectory{_from(cfg)}")
    return store


def _default_jobs(store: Store) -> int:
    return DEFAULT_S3_JOBS if isinstance(store, S3Store) else DEFAULT_JOBS


def filesystem_only(store: Store, what: str) -> FilesystemStore:
    """``store`` if it is a filesystem store; else a clear error saying ``what`` needs one."""
    if not isinstance(store, FilesystemStore):
        raise RegstoreError(f"{what} works on filesystem stores only; {store.location} is an "
                            "S3 store (see 'S3 stores' in the README)")
    return store


def _from(cfg: RegistryConfig) -> str:
    return f" in {cfg.path}" if cfg.path else ", or --root"


def run_gc(args: argparse.Namespace, out: Output) -> int:
    cfg = resolve_config(args)
    sweeping = not args.dry_run
    store = open_store(cfg, writable=sweeping, jobs=args.jobs)
    args.jobs = args.jobs or _default_jobs(store)
    on_s3 = isinstance(store, S3Store)
    if on_s3 and args.quarantine is not None:
        filesystem_only(store, "--quarantine")
    grace_explicit = args.min_age is not None and args.min_age > 0
    min_age = args.min_age if args.min_age is not None else parse_age(DEFAULT_MIN_AGE)
    # Alongside pushes: the config does not stop them and nobody said the registry is stopped.
    alongside_pushes = not cfg.readonly and not args.force
    if sweeping and alongside_pushes and not grace_explicit:
        raise NotReadOnly(
            "refusing to sweep: the registry is not in read-only mode, and pushes during a "
            "sweep can lose layers (distribution#3045). Set storage.maintenance.readonly."
            f"enabled: true{_from(cfg)} and restart the registry, or stop the registry and "
            "pass --force, or give a grace period longer than any push (--min-age 1h); "
            "--dry-run is always safe")
    if sweeping and alongside_pushes and on_s3:
        # The filesystem's holding area puts back what a push started to use mid-sweep; on
        # S3 a deletion cannot be undone, so a sweep needs the registry not to take pushes.
        raise NotReadOnly(
            "refusing to sweep an S3 store alongside pushes: S3 deletions cannot be undone, so "
            "regstore cannot put back a blob a push starts to use during the sweep. Set "
            f"storage.maintenance.readonly.enabled: true{_from(cfg)} and restart every "
            "registry instance on this bucket, or stop them and pass --force; --dry-run is "
            "always safe")
    command = "regstore gc" + (" --dry-run" if args.dry_run else "") + \
              (" -m" if args.delete_untagged else "")
    notes: list[str] = [f"config: {w}" for w in cfg.warnings]
    for note in notes:
        out.problem(f"warning: {note}")
    with lock_for(store, command, exclusive=sweeping) as lock:
        if lock.stale:
            notes.append(f"took over a stale lock left by {lock.stale}")
            out.problem(f"warning: {notes[-1]}")
        if sweeping and isinstance(store, FilesystemStore):
            restored = recover(store)
            if restored:
                notes.append(f"put back {len(restored)} items an interrupted sweep had held; "
                             "this run plans again from what is there")
                out.problem(f"warning: {notes[-1]}")
        started = time.time()
        with out.progress("listing", "entries") as tick:
            # The blob listing is made during the mark, while other processes read manifests.
            inventory = take_inventory(
                store, tick, jobs=args.jobs, processes=processes_for(args.jobs),
                tag_history=args.delete_untagged or args.delete_empty_repos, blobs=False,
                # Layer links as keys and tags as tables, but on a store walked flat (S3):
                # its listing keeps each link's time by its digest anyway, and a link named
                # by listing its repository again would cost requests. Nor with -m: most
                # repositories then have links to remove (1,358 of 1,688 at 100k blobs), and
                # naming them by listing those again cost more than keeping the digests
                # (bench/README.md).
                compact=not store.flat_walk and not args.delete_untagged)
        live_upload = _recent_upload(store, inventory, started - LIVE_UPLOAD_WINDOW)
        if live_upload and not alongside_pushes:
            message = (f"the registry wrote upload {live_upload} less than "
                       f"{LIVE_UPLOAD_WINDOW // 60} minutes ago although "
                       f"{'the config says read-only' if cfg.readonly else '--force says it is stopped'}"
                       ": restart it after switching read-only on, or stop it")
            if sweeping and not grace_explicit:
                raise NotReadOnly(f"refusing to sweep: {message}; or sweep alongside pushes "
                                  "with an explicit grace period (--min-age 1h)")
            notes.append(message)
            out.problem(f"warning: {message}")
        # The blob listing: without -m, on a compact inventory, made after the mark and
        # sifted by it (only the unmarked blobs kept); else made during the mark, while other
        # processes read the manifests.
        listing: dict[str, Any] = {"list_blobs": lambda: list_blobs(store, inventory,
                                                                    jobs=args.jobs)}
        if not args.delete_untagged and inventory.compact:
            listing = {"sift_blobs": lambda marked, read, more: sift_blobs(
                store, inventory, marked, read, more, jobs=args.jobs,
                processes=processes_for(args.jobs))}
        with out.progress("reading manifests", "manifests") as tick:
            marks = mark(store, inventory, args.delete_untagged, args.jobs, tick,
                         protect_since=started - min_age if min_age else None,
                         processes=processes_for(args.jobs), full=False, keep_live=False,
                         **listing)
        uploads_age = args.uploads_older_than if args.uploads_older_than is not None \
            else cfg.upload_purging.age_seconds
        plan = build_plan(store, inventory, marks, PlanOptions(
            protect_since=started - min_age if min_age else None,
            uploads_before=None if args.keep_uploads else started - uploads_age,
            empty_repositories=args.delete_empty_repos, jobs=args.jobs,
            processes=processes_for(args.jobs)))
        out.kept += [inventory, marks, plan]
        findings = marks.problems + inventory.findings
        blocking = [f for f in findings if f.severity == ERROR and not
                    (args.ignore_broken_manifests and f.kind.endswith("-manifest"))]
        for f in findings:
            if f.severity == ERROR or not out.quiet:
                out.problem(finding_line(f))
        complete = not blocking
        applied = None
        quarantined = None
        code = EXIT_OK
        if not complete:
            code = EXIT_INCOMPLETE
            out.problem(f"mark incomplete: {len(blocking)} problem(s) above; nothing was "
                        f"{'swept' if sweeping else 'would be swept by a real run'}")
        else:
            abnormal = _abnormal(plan, inventory, args.max_delete_fraction)
            if abnormal and sweeping:
                raise SafetyValve(f"stopping before removing anything: {abnormal}")
            if abnormal:
                notes.append(f"a real run would stop: {abnormal}")
                out.problem(f"warning: {notes[-1]}")
            if sweeping and isinstance(store, FilesystemStore):
                holding = Holding(store)
                with out.progress("sweeping", "items") as tick:
                    applied = apply_plan(
                        store, plan, remover=holding, progress=tick,
                        rescan=late_references(store, inventory, started, args.jobs),
                        give_back=lambda d: [h.key for h in holding.give_back(d)],
                        settle=SETTLE_SECONDS if alongside_pushes else 0.0, jobs=args.jobs)
                quarantined = holding.finish(args.quarantine)
                if quarantined:
                    notes.append(f"removed items are in {quarantined}; `regstore restore "
                                 f"{args.quarantine}` puts them back")
                    out.say(notes[-1])
                if holding.direct:
                    notes.append("the holding area is on another filesystem than the store: "
                                 "items were deleted directly")
            elif sweeping:
                # S3: deleted directly, in the crash-safe order, looking at the repositories
                # again before layer links go and again before blobs go (README: S3 stores).
                with out.progress("sweeping", "items") as tick:
                    applied = apply_plan(
                        store, plan, progress=tick,
                        rescan=late_references(store, inventory, started, args.jobs),
                        jobs=args.jobs)
            if applied is not None:
                if applied.failed:
                    code = EXIT_FINDINGS
        if sweeping and complete and cfg.blobdescriptor_cache and applied and applied.removed:
            notes.append(_cache_advice(cfg))
            out.problem(f"note: {notes[-1]}")
        out.doc = gc_json(store=store.location, dry_run=args.dry_run,
                          delete_untagged=args.delete_untagged, plan=plan, findings=findings,
                          complete=complete, applied=applied, exit_code=code, notes=notes)
        if out.as_json:
            return code
        out.say(plan_summary(plan))
        for line in plan_lines(plan):
            out.say(line)
        if applied is not None:
            for i, line in enumerate(apply_lines(applied)):
                if i == 0:
                    out.say(line)
                else:
                    out.problem(line)
        return code


def _recent_upload(store: Store, inventory: Inventory, since: float) -> str | None:
    """An upload the registry wrote at or after ``since``, as ``repo/uuid``, or None."""
    for repo in inventory.repositories.values():
        for upload_id in repo.uploads:
            if not is_upload_id(upload_id):
                continue
            started = upload_started(store, repo.name, upload_id)
            if started is not None and started >= since:
                return f"{repo.name}/{upload_id}"
    return None


def _abnormal(plan: SweepPlan, inventory: Inventory, max_fraction: float | None) -> str | None:
    """Why the plan looks wrong enough to stop before removing anything, or None."""
    blobs = len(plan.of_kind(BLOB))
    total = plan.blobs_total
    if not total or not blobs:
        return None
    tagged = any(t.current for r in inventory.repositories.values() for t in r.tags.values())
    if blobs == total and tagged and max_fraction != 1:
        return (f"the plan removes every one of the {total} blobs although the store has tags; "
                "a mark that found nothing live is more likely wrong than true. Read the dry "
                "run; if it is right, pass --max-delete-fraction 1")
    limit = max_fraction if max_fraction is not None else DEFAULT_MAX_DELETE_FRACTION
    if blobs / total > limit:
        return (f"the plan removes {blobs} of {total} blobs ({blobs / total:.0%}), more than "
                f"the limit of {limit:.0%}. Read the dry run; if it is right, raise "
                "--max-delete-fraction")
    return None


def _cache_advice(cfg: RegistryConfig) -> str:
    if cfg.blobdescriptor_cache == "redis":
        where = f" at {cfg.redis_addr}" if cfg.redis_addr else ""
        return ("the registry caches blob descriptors in redis" + where + ": flush the "
                "repository keys (`redis-cli --scan --pattern 'repository::*' | xargs "
                "redis-cli del` and the same for 'blobs::*') or restart the registry, or it "
                "may answer 'layer already exists' for removed blobs (distribution#1803)")
    return ("the registry caches blob descriptors in memory: restart it, or it may answer "
            "'layer already exists' for removed blobs (distribution#1803)")


def run_restore(args: argparse.Namespace, out: Output) -> int:
    cfg = resolve_config(args)
    store = filesystem_only(open_store(cfg, writable=True), "regstore restore")
    runs = runs_in(args.quarantine)
    if not runs:
        raise RegstoreError(f"{args.quarantine} holds no quarantined sweep (no directory with "
                            "a journal.jsonl in it)")
    with lock_for(store, "regstore restore"):
        restored = restore_runs(store, runs)
    out.doc = {"format": JSON_FORMAT, "regstore": __version__, "command": "restore",
               "exit_code": EXIT_OK, "restored": [h.__dict__ for h in restored]}
    out.say(f"put back {len(restored)} items from {len(runs)} quarantined sweep(s)")
    return EXIT_OK


def run_purge(args: argparse.Namespace, out: Output) -> int:
    cutoff = time.time() - args.older_than
    purged = []
    for run in runs_in(args.quarantine):
        if (run / "journal.jsonl").stat().st_mtime < cutoff:
            shutil.rmtree(run)
            purged.append(run.name)
    out.doc = {"format": JSON_FORMAT, "regstore": __version__, "command": "purge-quarantine",
               "exit_code": EXIT_OK, "purged": purged}
    out.say(f"deleted {len(purged)} quarantined sweep(s) older than the limit")
    return EXIT_OK


VERIFY_DESCRIPTION = """\
Check the integrity of the store, offline: re-hash every blob (sha256 or sha512, by its
path), read every revision, layer, tag and tag index link, parse every linked manifest and
check that everything it references exists, has the size its descriptor states and is
linked into the repository. Each problem is a finding with a kind, a severity and the images
it breaks: errors break an image, warnings are wrong but break nothing live, hints are
leftovers (orphan blobs, untagged manifests, stale uploads, empty repositories). The finding
kinds and the JSON report are documented in `python3 -m pydoc regstore.verify`.

verify never writes into the store and takes the lock shared: it runs beside other readers
and the registry, and refuses while a sweep holds the lock. --quarantine moves corrupt blobs
out of the store: the registry then answers "blob unknown" for them and the next push of the
image heals it; like a gc sweep it needs the registry in read-only mode or stopped (--force).

Cron rotation: with --max-duration and/or --max-bytes a run hashes only part of the layer
data, least recently verified first; the state file records what was verified when, so
nightly runs cover the whole store pass after pass. Manifests, and blobs known to be
corrupt, are hashed on every run; sizes are compared on every run.
"""

VERIFY_EXAMPLES = """\
examples:
  regstore verify /etc/docker/registry/config.yml
  regstore verify --metadata-only --root /var/lib/registry
  regstore verify -q --max-duration 2h /etc/docker/registry/config.yml    # nightly cron
  regstore verify --json config.yml | jq '.findings[] | select(.severity == "error")'
  regstore verify --force --quarantine /var/lib/registry/.regstore/quarantine \\
      --root /var/lib/registry                                           # registry stopped
"""

_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?", re.IGNORECASE)


def _size(text: str) -> int:
    m = _SIZE_RE.fullmatch(text.strip())
    value = float(m.group(1)) * 1024 ** " kmgtp".index(m.group(2).lower() or " ") if m else 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size: use e.g. 500M, 20G, 2T (K, M, G, T are powers of 1024)")
    return int(value)


def _duration(text: str) -> float:
    seconds = _age(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a duration above 0, e.g. 30m, 2h")
    return seconds


def _verify_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    v = commands.add_parser(
        "verify", help="check integrity: re-hash blobs, read links and manifests, name the "
                       "broken images", description=VERIFY_DESCRIPTION,
        epilog=VERIFY_EXAMPLES + "\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _store_arguments(v)
    v.add_argument("--metadata-only", action="store_true",
                   help="check everything but the hashes of layer and config data (manifests "
                        "are still hashed, sizes still compared)")
    v.add_argument("--max-duration", type=_duration, metavar="AGE",
                   help="stop hashing layer data AGE after the start (30m, 2h); the next run "
                        "continues where this one stopped")
    v.add_argument("--max-bytes", type=_size, metavar="SIZE",
                   help="hash at most SIZE of layer data (500G, 2T; at least one blob); the "
                        "next run continues where this one stopped")
    state = v.add_mutually_exclusive_group()
    state.add_argument("--state-file", type=Path, metavar="FILE",
                       help="where the rotation state is kept (default: "
                            "<root>/.regstore/verify-state)")
    state.add_argument("--no-state", action="store_true",
                       help="neither read nor write a rotation state")
    v.add_argument("--quarantine", type=Path, metavar="DIR",
                   help="move the directories of corrupt blobs into DIR (same filesystem, "
                        "outside the docker tree), with a record; `regstore restore DIR` puts "
                        "them back")
    v.add_argument("--force", action="store_true",
                   help="with --quarantine: move although the config does not put the "
                        "registry in read-only mode (only when the registry is stopped)")
    _output_arguments(v)
    _cron_arguments(v)


@contextmanager
def _phase_bars(out: Output) -> Iterator[Callable[[str, int, int | None], None]]:
    """A progress callback for verify: one tqdm bar per phase, on a terminal only."""
    if out.quiet or out.as_json or not out.err.isatty():
        yield lambda phase, n, total: None
        return
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}  # type: ignore[type-arg]

    def update(phase: str, n: int, total: int | None) -> None:
        if phase not in bars:
            for bar in bars.values():
                bar.close()
            hashing = phase == "hashing"
            bars[phase] = tqdm(desc=phase, total=total, unit="B" if hashing else "items",
                               unit_scale=hashing, unit_divisor=1024, file=out.err, leave=False)
        bars[phase].update(n)

    try:
        yield update
    finally:
        for bar in bars.values():
            bar.close()


class _StateSaver:
    """Saves the verify state where asked; says once, and only once, when it cannot."""

    def __init__(self, path: Path | None, state: VerifyState, notes: list[str],
                 out: Output) -> None:
        self.path = path
        self.state = state
        self.notes = notes
        self.out = out
        self.failed = False

    def save(self) -> None:
        if self.path is None:
            return
        try:
            save_state(self.path, self.state)
        except OSError as exc:
            if not self.failed:
                self.failed = True
                self.notes.append(f"cannot write the verify state {self.path}: "
                                  f"{exc.strerror or exc}; the next run cannot continue this "
                                  "one's rotation (choose --state-file, or --no-state)")
                self.out.problem(f"warning: {self.notes[-1]}")


def _load_verify_state(path: Path | None, bounded: bool) -> tuple[VerifyState, str,
                                                                 list[Finding]]:
    """The state to start from, its status (ok, absent, corrupt, disabled) and a finding when
    it was corrupt."""
    if path is None:
        return VerifyState(), "disabled", []
    try:
        loaded = load_state(path)
    except StateCorrupt as exc:
        then = ("this run ignores --max-bytes and --max-duration and hashes everything"
                if bounded else "this run starts a new rotation")
        return VerifyState(), "corrupt", [Finding(
            "state-corrupt", WARNING, f"the verify state file is corrupt ({exc}); it was "
            f"ignored: {then}, and writes a new one", key=str(path))]
    except OSError as exc:
        raise RegstoreError(f"cannot read the verify state {path}: {exc.strerror or exc}; fix "
                            "its permissions, or pass --state-file FILE or --no-state") from None
    return (loaded or VerifyState()), ("absent" if loaded is None else "ok"), []


def _default_state_file(store: Store) -> Path:
    """Where verify keeps its rotation state when --state-file does not say: beside the
    docker tree of a filesystem store; for an S3 store, which has no local directory, in the
    user's cache directory under a name derived from the store's endpoint, bucket and prefix."""
    if isinstance(store, FilesystemStore):
        return default_state_path(store.root)
    assert isinstance(store, S3Store)
    return cache_state_path(store.identity, os.environ)


def _outside_docker_tree(path: Path, store: FilesystemStore, option: str) -> None:
    """Refuse a file of regstore's own inside the tree the registry reads."""
    real = os.path.realpath(path)
    docker = os.path.realpath(store.root / "docker")
    if real == docker or real.startswith(docker + os.sep):
        raise RegstoreError(f"{option} {path} is inside the store's docker tree, which belongs "
                            "to the registry; keep it beside it, e.g. in "
                            f"{store.root / '.regstore'}")


def run_verify(args: argparse.Namespace, out: Output) -> int:
    cfg = resolve_config(args)
    quarantining = args.quarantine is not None
    store = open_store(cfg, writable=quarantining, jobs=args.jobs)
    args.jobs = args.jobs or _default_jobs(store)
    if quarantining:
        store = filesystem_only(store, "verify --quarantine")
    if quarantining and not cfg.readonly and not args.force:
        raise NotReadOnly(
            "refusing to quarantine: the registry is not in read-only mode, and a push may be "
            "writing the very blob being moved. Set storage.maintenance.readonly.enabled: "
            f"true{_from(cfg)} and restart the registry, or stop the registry and pass "
            "--force; verify without --quarantine is always safe")
    quarantine = Quarantine.open(args.quarantine, store) \
        if quarantining and isinstance(store, FilesystemStore) else None
    notes: list[str] = [f"config: {w}" for w in cfg.warnings]
    bounded = args.max_bytes is not None or args.max_duration is not None
    if args.no_state and bounded:
        notes.append("--no-state with a bound: every run starts from the same blobs, so some "
                     "are never verified; keep a state file for rotation")
    for note in notes:
        out.problem(f"warning: {note}")
    state_file = None if args.no_state else (args.state_file or _default_state_file(store))
    if state_file is not None and isinstance(store, FilesystemStore):
        _outside_docker_tree(state_file, store, "--state-file")
    command = "regstore verify" + (" --quarantine" if quarantining else "")
    with lock_for(store, command, exclusive=quarantining) as lock:
        if lock.stale:
            notes.append(f"took over a stale lock left by {lock.stale}")
            out.problem(f"warning: {notes[-1]}")
        state, state_status, extra = _load_verify_state(state_file, bounded)
        corrupt_state = state_status == "corrupt"
        saver = _StateSaver(state_file, state, notes, out)
        with _phase_bars(out) as progress:
            try:
                report = verify(
                    store, state, metadata_only=args.metadata_only, jobs=args.jobs,
                    max_bytes=None if corrupt_state else args.max_bytes,
                    max_duration=None if corrupt_state else args.max_duration,
                    upload_max_age=cfg.upload_purging.age_seconds, progress=progress,
                    checkpoint=saver.save)
            finally:
                saver.save()  # also on Ctrl-C: what was verified stays verified
        for finding in extra:
            report.add(finding)
        moved = None
        if quarantine is not None and isinstance(store, FilesystemStore):
            moved = quarantine_corrupt(store, report, quarantine, command)
    code = EXIT_FINDINGS if report.errors or (moved and moved.failed) else EXIT_OK
    quarantined = []
    moved_notes: list[str] = []
    if moved is not None:
        assert quarantine is not None
        quarantined = [dict(held.__dict__, item=str(quarantine.item_path(held)))
                       for _, held in moved.moved]
        moved_notes += [f"not quarantined: {b.digest}: {why}" for b, why in moved.skipped]
        moved_notes += [f"FAILED to quarantine {b.digest}: {why}" for b, why in moved.failed]
        if moved.moved:
            moved_notes.append(
                f"moved {len(moved.moved)} corrupt blob(s) into {quarantine.run_dir}: the "
                "registry answers 'blob unknown' for them now; re-push the images named above, "
                f"then verify again. `regstore restore {args.quarantine}` puts them back")
            if cfg.blobdescriptor_cache:
                moved_notes.append(_cache_advice(cfg))
        notes += moved_notes
    out.doc = verify_json(store=store.location, report=report, exit_code=code,
                          quarantined=quarantined, notes=notes, state=state_status,
                          state_file=str(state_file) if state_file else None)
    if out.as_json:
        return code
    if out.quiet:
        for f in report.errors:  # as -q promises: nothing when all is well, problems on stderr
            out.problem(finding_line(f))
    else:
        for line in verify_finding_lines(report.findings):
            out.say(line)
        for line in verify_summary(report, state_status):
            out.say(line)
    for note in moved_notes:
        out.problem(note)
    return code


def _marks_for_reading(args: argparse.Namespace) -> tuple[Store, Inventory, object,
                                                          object]:
    cfg = resolve_config(args)
    store = open_store(cfg, writable=False, jobs=args.jobs)
    args.jobs = args.jobs or _default_jobs(store)
    with lock_for(store, f"regstore {args.command}", exclusive=False):
        inventory = take_inventory(store, jobs=args.jobs, processes=processes_for(args.jobs))
        plain = mark(store, inventory, False, args.jobs)
        untagged = mark(store, inventory, True, args.jobs)
    for f in plain.problems + inventory.findings:
        if f.severity == ERROR:
            out_line = finding_line(f)
            print(out_line, file=sys.stderr)
    return store, inventory, plain, untagged


def run_du(args: argparse.Namespace, out: Output) -> int:
    store, inventory, plain, untagged = _marks_for_reading(args)
    u = usage(store, inventory, plain, untagged)  # type: ignore[arg-type]
    key = {"reachable": lambda r: -r.reachable_bytes, "unique": lambda r: -r.unique_bytes,
           "shared": lambda r: -r.shared_bytes, "freed": lambda r: -r.freed_by_m_bytes,
           "name": lambda r: r.repository}[args.sort]
    rows = sorted(u.repositories, key=lambda r: (key(r), r.repository))
    out.doc = {"format": JSON_FORMAT, "regstore": __version__, "command": "du",
               "store": store.location, "exit_code": EXIT_OK,
               "summary": {"total_bytes": u.total_bytes, "reachable_bytes": u.reachable_bytes,
                           "shared_bytes": u.shared_bytes, "orphan_bytes": u.orphan_bytes,
                           "repositories": len(rows)},
               "repositories": [r.as_dict() for r in rows]}
    if args.csv:
        out.say("repository,reachable_bytes,unique_bytes,shared_bytes,freed_by_m_bytes,"
                "blobs,tags,manifests")
        for r in rows:
            out.say(f'"{r.repository}",{r.reachable_bytes},{r.unique_bytes},{r.shared_bytes},'
                    f"{r.freed_by_m_bytes},{r.blobs},{r.tags},{r.manifests}")
        return EXIT_OK
    width = max([len(r.repository) for r in rows] + [10])
    out.say(f"{'REPOSITORY':<{width}}  {'REACHABLE':>10}  {'UNIQUE':>10}  {'SHARED':>10}  "
            f"{'FREED -m':>10}  TAGS")
    for r in rows:
        out.say(f"{r.repository:<{width}}  {human_bytes(r.reachable_bytes):>10}  "
                f"{human_bytes(r.unique_bytes):>10}  {human_bytes(r.shared_bytes):>10}  "
                f"{human_bytes(r.freed_by_m_bytes):>10}  {r.tags}")
    out.say(f"store: {human_bytes(u.total_bytes)} of blob data, "
            f"{human_bytes(u.reachable_bytes)} reachable ({human_bytes(u.shared_bytes)} of it "
            f"shared), {human_bytes(u.orphan_bytes)} orphan (what `regstore gc` removes)")
    return EXIT_OK


def run_explain(args: argparse.Namespace, out: Output) -> int:
    if not is_digest(args.digest):
        raise RegstoreError(f"{args.digest!r} is not a digest: give sha256:<64 hex digits>")
    store, inventory, plain, untagged = _marks_for_reading(args)
    digest = args.digest
    present = digest in inventory.blobs
    plain_chains = explain(digest, inventory, plain)  # type: ignore[arg-type]
    m_chains = explain(digest, inventory, untagged)  # type: ignore[arg-type]
    links = sorted(n for n, r in inventory.repositories.items() if digest in r.layers)
    revisions = sorted(n for n, r in inventory.repositories.items() if digest in r.revisions)
    out.doc = {"format": JSON_FORMAT, "regstore": __version__, "command": "explain",
               "store": store.location, "exit_code": EXIT_OK, "digest": digest,
               "in_store": present, "kept_by_gc": bool(plain_chains),
               "kept_by_gc_m": bool(m_chains),
               "chains": [str(c) for c in plain_chains],
               "chains_m": [str(c) for c in m_chains],
               "layer_links": links, "revision_links": revisions}
    out.say(f"{digest}: {'in the blob store' if present else 'NOT in the blob store'}"
            f"{'; linked as a layer in ' + ', '.join(links) if links else ''}"
            f"{'; a manifest revision of ' + ', '.join(revisions) if revisions else ''}")
    for title, chains in (("regstore gc", plain_chains), ("regstore gc -m", m_chains)):
        if chains:
            out.say(f"kept by `{title}`, reached by:")
            for c in chains:
                out.say(f"  {c}")
        else:
            out.say(f"`{title}` would remove it: no live manifest of any repository reaches it")
    return EXIT_OK


COMMANDS = {"gc": "run_gc", "verify": "run_verify", "restore": "run_restore",
            "purge-quarantine": "run_purge", "du": "run_du", "explain": "run_explain"}


def write_json(doc: dict[str, Any], out: TextIO) -> None:
    """Write ``doc`` as one line of JSON, its top-level lists a thousand elements at a time.

    json.dumps without indent is the only call that runs json's C encoder (json.dump and any
    indent run a pure-Python one: a tenth of a -m dry run on a 100k-blob store); a call per
    thousand elements keeps a report of a hundred thousand items from becoming one string
    that size, and costs a fiftieth of a call per element. `| jq .` indents for a person."""
    out.write("{")
    for n, (key, value) in enumerate(doc.items()):
        out.write((", " if n else "") + json.dumps(key) + ": ")
        if isinstance(value, list):
            out.write("[")
            for i in range(0, len(value), 1000):
                out.write((", " if i else "") + json.dumps(value[i:i + 1000])[1:-1])
            out.write("]")
        else:
            out.write(json.dumps(value))
    out.write("}\n")


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None, kept: list[object] | None = None) -> int:
    """Run regstore with ``argv``; return the exit code (documented in ``--help``). The
    command's large values go into ``kept`` when it is given (else they are freed here)."""
    _tune_collector()
    _tune_allocator()
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    log = _open_log(getattr(args, "log_file", None), err)
    output = Output(getattr(args, "quiet", False), getattr(args, "json", False), out, err, log,
                    kept)
    started = time.time()
    output.to_log(f"start: regstore {' '.join(sys.argv[1:] if argv is None else argv)}")
    try:
        code = globals()[COMMANDS[args.command]](args, output)
    except (RegstoreError, ConfigError) as exc:
        code = int(getattr(exc, "exit_code", EXIT_CONFIG))
        output.to_log(f"regstore: {exc}")
        print(f"regstore: {exc}", file=err)
        # A script reading --json always gets a document, even when the run stopped.
        output.doc = {"format": JSON_FORMAT, "regstore": __version__, "command": args.command,
                      "exit_code": code, "error": str(exc)}
    except KeyboardInterrupt:
        print("regstore: interrupted", file=err)
        code, output.doc = EXIT_INTERRUPTED, None
    try:
        if output.as_json and output.doc is not None:
            write_json(output.doc, out)
            out.flush()
    except BrokenPipeError:
        _reader_gone(out)
    metrics_file = getattr(args, "metrics_file", None)
    if metrics_file is not None:
        code = _write_metrics(metrics_file, args.command, output.doc, started, code, err)
    output.to_log(f"end: exit {code} after {time.time() - started:.1f}s")
    if log is not None:
        log.close()
    return code


def run() -> NoReturn:
    """The ``regstore`` command (and ``python -m regstore``): :func:`main`, then an exit at
    once. By then the lock is released, the log and metrics files are closed, and the output
    is flushed here; what an ordinary exit would add is freeing every object of the run one
    by one and tearing the interpreter down, about a tenth of a second after a gc of a
    100k-blob store, which the operating system does for free. The gc's inventory, mark and
    plan are kept here, not freed when the gc returns: that took another 40-50 ms, before
    the report was written."""
    kept: list[object] = []
    code = main(kept=kept)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a reader that went away (`| head`): nothing left to tell it
            pass
    os._exit(code)


#: Allocations between collections of the youngest generation, and collections of each
#: generation between collections of the next (the interpreter's defaults: 700, 10, 10).
COLLECTOR_THRESHOLDS = (10_000, 100, 100)


def _tune_collector() -> None:
    """Make the cyclic garbage collector run less often. A run builds a few hundred thousand
    to millions of long-lived objects (digests, tags, descriptors) that hold no cycles; at the
    default thresholds the collector walks them again and again, a fifth of a dry run's CPU
    time. Young cycles (tracebacks, a client library's objects) are still collected."""
    collector.set_threshold(*COLLECTOR_THRESHOLDS)


#: The size from which glibc's malloc gives a block a mapping of its own, held fixed by
#: :func:`_tune_allocator` (glibc's starting value).
MMAP_THRESHOLD = 128 * 1024
_M_MMAP_THRESHOLD = -3  # glibc's mallopt() parameter


def _tune_allocator() -> None:
    """Hold glibc's malloc to a fixed size from which a block gets a mapping of its own, freed
    to the system when the block is. By default glibc raises that size to the largest block
    freed so far (up to 32 MB): once a run has freed one large buffer, the next ones come from
    the heap, where memory freed stays in the process. At a million blobs that kept the peak
    of a gc 20 to 40 MB higher. Without glibc, nothing is done."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (ValueError, OSError, AttributeError):
        return  # no such confstr name, or no glibc


def _open_log(path: Path | None, err: TextIO) -> TextIO | None:
    if path is None:
        return None
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as exc:
        print(f"regstore: warning: cannot write the log {path}: {exc.strerror}; logging to "
              "stderr only", file=err)
        return None


def _write_metrics(path: Path, command: str, doc: dict[str, object] | None, started: float,
                   code: int, err: TextIO) -> int:
    """Write the run's metrics; a failure to write them is a failure of the run (exit 3),
    since an alert that never fires is worse than a cron mail."""
    metrics = run_metrics(started=started, seconds=time.time() - started, exit_code=code)
    if doc is not None and "error" not in doc:
        metrics += gc_metrics(doc) if command == "gc" else \
            verify_metrics(doc, FINDING_KINDS) if command == "verify" else []
    try:
        write_atomically(path, render(metrics, {"command": command}))
    except OSError as exc:
        print(f"regstore: cannot write the metrics file {path}: {exc.strerror}", file=err)
        return code or EXIT_CONFIG
    return code
