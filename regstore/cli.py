"""The command line: parse, check, run the algorithms, print, pick the exit code.

Nothing below this module prints or exits; this module is the only one that imports tqdm.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence, TextIO

from regstore import __version__
from regstore.config import ConfigError, RegistryConfig, config_for_root, default_config_path, \
    load_config, require_filesystem
from regstore.errors import EXIT_CONFIG, EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK, \
    NotReadOnly, RegstoreError, StoreNotFound
from regstore.findings import ERROR, Finding
from regstore.inventory import take_inventory
from regstore.lock import StoreLock
from regstore.mark import mark
from regstore.report import JSON_FORMAT, apply_lines, finding_line, gc_json, plan_lines, plan_summary
from regstore.store.filesystem import FilesystemStore
from regstore.sweep import apply_plan, build_plan

EXIT_CODES = """\
exit codes:
  0    success (verify: no errors; hints and warnings allowed)
  1    verify found errors; gc could not remove some items (they are listed)
  2    usage error
  3    configuration or store problem (no config, bad YAML, unsupported driver, no store)
  4    refused: the registry is not in read-only mode (see --force)
  5    another regstore run holds the store's lock
  6    mark incomplete: a live manifest or part of the tree could not be read; nothing swept
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
    _output_arguments(gc)
    return parser


def _store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", metavar="CONFIG", type=Path,
                   help="the registry's config.yml (default: $REGISTRY_CONFIGURATION_PATH, "
                        "then /etc/docker/registry/config.yml); REGISTRY_* environment "
                        "overrides apply as in the registry")
    p.add_argument("--root", type=Path, metavar="DIR",
                   help="a filesystem storage root (the directory holding docker/), instead "
                        "of a config")
    p.add_argument("--jobs", type=int, default=8, metavar="N",
                   help="threads for reading (default 8)")


def _output_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print nothing when all is well; problems still go to stderr")
    p.add_argument("--json", action="store_true",
                   help="print one JSON report on stdout (format in the README)")


class Output:
    """Where text goes: reports to stdout, problems to stderr, progress bars on a terminal."""

    def __init__(self, quiet: bool, as_json: bool, out: TextIO, err: TextIO) -> None:
        self.quiet = quiet
        self.as_json = as_json
        self.out = out
        self.err = err

    def say(self, line: str) -> None:
        if not self.quiet and not self.as_json:
            print(line, file=self.out)

    def problem(self, line: str) -> None:
        if not self.as_json:
            print(line, file=self.err)

    @contextmanager
    def progress(self, desc: str, unit: str = "it") -> Iterator[Callable[[int], None]]:
        if self.quiet or self.as_json or not self.err.isatty():
            yield lambda n: None
            return
        from tqdm import tqdm

        with tqdm(desc=desc, unit=unit, file=self.err, leave=False) as bar:
            yield bar.update


def resolve_config(args: argparse.Namespace) -> RegistryConfig:
    if args.root is not None:
        if args.config is not None:
            raise RegstoreError("give either CONFIG or --root, not both")
        return config_for_root(args.root)
    return load_config(args.config or default_config_path(os.environ))


def open_store(cfg: RegistryConfig, writable: bool) -> FilesystemStore:
    root = require_filesystem(cfg)
    store = FilesystemStore(root, writable=writable)
    if not root.is_dir():
        raise StoreNotFound(f"storage root {root} does not exist or is not a directory: check "
                            f"storage.filesystem.rootdirectory{_from(cfg)}")
    if not store.exists():
        raise StoreNotFound(f"{root} does not look like a registry store: there is no "
                            f"docker/registry/v2 below it. Point at the directory that holds "
                            f"docker/ (storage.filesystem.rootdirectory{_from(cfg)})")
    return store


def _from(cfg: RegistryConfig) -> str:
    return f" in {cfg.path}" if cfg.path else ", or --root"


def run_gc(args: argparse.Namespace, out: Output) -> int:
    cfg = resolve_config(args)
    sweeping = not args.dry_run
    store = open_store(cfg, writable=sweeping)
    if sweeping and not cfg.readonly and not args.force:
        raise NotReadOnly(
            "refusing to sweep: the registry is not in read-only mode, and pushes during a "
            "sweep can lose layers (distribution#3045). Set storage.maintenance.readonly."
            f"enabled: true{_from(cfg)} and restart the registry, or stop the registry and "
            "pass --force; --dry-run is always safe")
    command = "regstore gc" + (" --dry-run" if args.dry_run else "") + \
              (" -m" if args.delete_untagged else "")
    notes: list[str] = [f"config: {w}" for w in cfg.warnings]
    for note in notes:
        out.problem(f"warning: {note}")
    with StoreLock(store.root, command, exclusive=sweeping) as lock:
        if lock.stale:
            notes.append(f"took over a stale lock left by {lock.stale}")
            out.problem(f"warning: {notes[-1]}")
        with out.progress("listing", "entries") as tick:
            inventory = take_inventory(store, tick)
        with out.progress("reading manifests", "manifests") as tick:
            marks = mark(store, inventory, args.delete_untagged, args.jobs, tick)
        plan = build_plan(store, inventory, marks)
        findings = marks.problems + inventory.findings
        blocking = [f for f in findings if f.severity == ERROR and not
                    (args.ignore_broken_manifests and f.kind.endswith("-manifest"))]
        for f in findings:
            if f.severity == ERROR or not out.quiet:
                out.problem(finding_line(f))
        complete = not blocking
        applied = None
        if not complete:
            code = EXIT_INCOMPLETE
            out.problem(f"mark incomplete: {len(blocking)} problem(s) above; nothing was "
                        f"{'swept' if sweeping else 'would be swept by a real run'}")
        else:
            code = EXIT_OK
            if sweeping:
                with out.progress("sweeping", "items") as tick:
                    applied = apply_plan(store, plan, tick)
                if applied.failed:
                    code = EXIT_FINDINGS
        if out.as_json:
            doc = gc_json(store=store.location, dry_run=args.dry_run,
                          delete_untagged=args.delete_untagged, plan=plan, findings=findings,
                          complete=complete, applied=applied, exit_code=code, notes=notes)
            json.dump(doc, out.out, indent=2)
            out.out.write("\n")
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


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Run regstore with ``argv``; return the exit code (documented in ``--help``)."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    output = Output(getattr(args, "quiet", False), getattr(args, "json", False), out, err)
    try:
        if args.command == "gc":
            return run_gc(args, output)
        raise AssertionError(f"unknown command {args.command}")
    except (RegstoreError, ConfigError) as exc:
        code = int(getattr(exc, "exit_code", EXIT_CONFIG))
        print(f"regstore: {exc}", file=err)
        if output.as_json:
            # A script reading --json always gets a document, even when the run stopped.
            json.dump({"format": JSON_FORMAT, "regstore": __version__, "command": args.command,
                       "exit_code": code, "error": str(exc)}, out, indent=2)
            out.write("\n")
        return code
    except KeyboardInterrupt:
        print("regstore: interrupted", file=err)
        return EXIT_INTERRUPTED
