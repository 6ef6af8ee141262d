"""Run the real registry's ``garbage-collect`` and parse what it says it marked and deletes.

regstore is compared against ``docker-registry garbage-collect`` (2.8.2) on the same stores, so
its output has to become data. 2.8.2 writes two streams (``registry/storage/garbagecollect.go``
and ``vacuum.go``):

* stdout, plain ``fmt.Printf`` lines, printed in dry runs and real runs alike::

      <repo>
      <repo>: marking manifest <digest> ␠        (note the trailing space)
      <repo>: marking blob <digest>
      manifest eligible for deletion: <digest>  (with -m; names no repo: the last <repo> line does)

      <n> blobs marked, <m> blobs and <k> manifests eligible for deletion
      blob eligible for deletion: <digest>

* stderr, logrus (text formatter unless the config says ``json``), only in real runs and only at
  log level info: ``Deleting blob: <path>``, ``deleting manifest: <path>``, ``deleting manifest
  tag reference: <path>`` (paths relative to the storage root), and on failure a last line
  ``failed to garbage collect: <error>`` without a newline, with exit code 1.

The parser takes both streams line by line and recognises each message wherever it appears, so
``2>&1`` or a json log formatter does not fool it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .registry import REGISTRY_BINARY, registry_binary

_DIGEST = r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+"
# A repository name as the registry's reference grammar spells it (components joined by "/").
# The registry's grammar writes the dash separator as [-]*; an empty separator adds nothing
# to [a-z0-9]+ but makes the pattern backtrack exponentially on long names, so -+ here.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO = rf"{_COMPONENT}(?:/{_COMPONENT})*"

_REPO_LINE = re.compile(rf"^({_REPO})$")
_MARK_MANIFEST = re.compile(rf"^({_REPO}): marking manifest ({_DIGEST})\s*$")
_MARK_BLOB = re.compile(rf"^({_REPO}): marking blob ({_DIGEST})\s*$")
_MANIFEST_ELIGIBLE = re.compile(rf"^manifest eligible for deletion: ({_DIGEST})\s*$")
_BLOB_ELIGIBLE = re.compile(rf"^blob eligible for deletion: ({_DIGEST})\s*$")
_SUMMARY = re.compile(
    r"^(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion\s*$"
)
_FAILED = re.compile(r"failed to garbage collect: (.*)$", re.DOTALL)
# logrus text formatter: time="..." level=info msg="Deleting blob: /docker/..." key=value ...
_LOGRUS_TEXT = re.compile(r'^time="[^"]*" level=(\w+) msg=("(?:[^"\\]|\\.)*"|\S+)')
_DELETING_BLOB = re.compile(r"^Deleting blob: (\S+)$")
_DELETING_MANIFEST = re.compile(r"^deleting manifest: (\S+)$")
_DELETING_TAG_REFERENCE = re.compile(r"^deleting manifest tag reference: (\S+)$")


@dataclass(frozen=True)
class GCSummary:
    """The counts of the summary line: ``<marked> blobs marked, <blobs> blobs and <manifests>
    manifests eligible for deletion``.
    """

    marked: int
    blobs_eligible: int
    manifests_eligible: int


@dataclass
class RealGCResult:
    """What one ``docker-registry garbage-collect`` run printed, parsed: the global mark set, what
    it deletes (or would, in a dry run), the log of real deletions, and the raw streams.
    """

    returncode: int
    stdout: str
    stderr: str
    dry_run: bool
    delete_untagged: bool
    repositories: list[str] = field(default_factory=list)
    marked_manifests: set[tuple[str, str]] = field(default_factory=set)
    marked_blobs: set[str] = field(default_factory=set)
    eligible_blobs: set[str] = field(default_factory=set)
    eligible_manifests: set[tuple[str, str]] = field(default_factory=set)
    summary: GCSummary | None = None
    deleted_blob_paths: list[str] = field(default_factory=list)
    deleted_manifest_paths: list[str] = field(default_factory=list)
    deleted_tag_reference_paths: list[str] = field(default_factory=list)
    error: str | None = None
    unparsed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the run exited 0 and printed its summary line."""
        return self.returncode == 0 and self.summary is not None


class RealGCError(Exception):
    """``docker-registry garbage-collect`` failed; carries the parsed result with both streams."""

    def __init__(self, result: RealGCResult) -> None:
        self.result = result
        super().__init__(
            f"{REGISTRY_BINARY} garbage-collect exited {result.returncode}: "
            f"{result.error or result.stderr.strip()[-2000:]}"
        )


def run_real_gc(
    config_path: Path,
    *,
    dry_run: bool,
    delete_untagged: bool,
    check: bool = True,
    log_level: str | None = "info",
    timeout: float = 300.0,
    environ_without: tuple[str, ...] = (),
) -> RealGCResult:
    """Run ``docker-registry garbage-collect`` on ``config_path`` and return its parsed output;
    ``log_level`` overrides the config (through ``REGISTRY_LOG_LEVEL``) so real deletions are
    logged, ``check`` raises RealGCError when the run fails, and ``environ_without`` names
    variables the registry must not see (``AWS_CA_BUNDLE`` for the s3 driver).
    """
    binary = registry_binary()
    if binary is None:
        raise RuntimeError(f"{REGISTRY_BINARY} is not on PATH")
    argv = [binary, "garbage-collect"]
    if dry_run:
        argv.append("--dry-run")
    if delete_untagged:
        argv.append("--delete-untagged")
    argv.append(str(config_path))
    env = {k: v for k, v in os.environ.items() if k not in environ_without}
    if log_level is not None:
        env["REGISTRY_LOG_LEVEL"] = log_level
    completed = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    result = parse_gc_output(
        completed.stdout.decode("utf-8", "replace"),
        completed.stderr.decode("utf-8", "replace"),
        returncode=completed.returncode,
        dry_run=dry_run,
        delete_untagged=delete_untagged,
    )
    if check and not result.ok:
        raise RealGCError(result)
    return result


def parse_gc_output(
    stdout: str,
    stderr: str,
    *,
    returncode: int = 0,
    dry_run: bool = False,
    delete_untagged: bool = False,
) -> RealGCResult:
    """Parse the two streams of a 2.8.2 ``garbage-collect`` run into a RealGCResult, raising
    ValueError when a successful run's lines disagree with its own summary counts.
    """
    result = RealGCResult(
        returncode=returncode,
        stdout=stdout,
        stderr=stderr,
        dry_run=dry_run,
        delete_untagged=delete_untagged,
    )
    current_repo: str | None = None
    for line in (stdout + "\n" + stderr).splitlines():
        current_repo = _parse_line(result, line, current_repo)
    if result.returncode == 0 and result.summary is not None:
        _check_counts(result)
    return result


def _parse_line(result: RealGCResult, line: str, current_repo: str | None) -> str | None:
    # Returns the repository that "manifest eligible for deletion" lines belong to from here on.
    if not line.strip():
        return current_repo
    message = _log_message(line)
    if message is not None:
        _parse_log_message(result, message)
        return current_repo
    if (match := _MARK_MANIFEST.match(line)) is not None:
        result.marked_manifests.add((match[1], match[2]))
        result.marked_blobs.add(match[2])
    elif (match := _MARK_BLOB.match(line)) is not None:
        result.marked_blobs.add(match[2])
    elif (match := _MANIFEST_ELIGIBLE.match(line)) is not None:
        if current_repo is None:
            raise ValueError(f"manifest eligible for deletion before any repository: {line!r}")
        result.eligible_manifests.add((current_repo, match[1]))
    elif (match := _BLOB_ELIGIBLE.match(line)) is not None:
        result.eligible_blobs.add(match[1])
    elif (match := _SUMMARY.match(line)) is not None:
        result.summary = GCSummary(int(match[1]), int(match[2]), int(match[3]))
    elif (match := _FAILED.search(line)) is not None:
        result.error = match[1].strip()
    elif (match := _REPO_LINE.match(line)) is not None:
        result.repositories.append(match[1])
        return match[1]
    else:
        result.unparsed.append(line)
    return current_repo


def _log_message(line: str) -> str | None:
    # A logrus line, text or json formatter, reduced to its msg; None for any other line.
    if (match := _LOGRUS_TEXT.match(line)) is not None:
        raw = match[2]
        return json.loads(raw) if raw.startswith('"') else raw
    if line.startswith("{"):
        try:
            document = json.loads(line)
        except ValueError:
            return None
        if isinstance(document, dict) and "msg" in document:
            return str(document["msg"])
    return None


def _parse_log_message(result: RealGCResult, message: str) -> None:
    if (match := _DELETING_BLOB.match(message)) is not None:
        result.deleted_blob_paths.append(match[1])
    elif (match := _DELETING_MANIFEST.match(message)) is not None:
        result.deleted_manifest_paths.append(match[1])
    elif (match := _DELETING_TAG_REFERENCE.match(message)) is not None:
        result.deleted_tag_reference_paths.append(match[1])


def _check_counts(result: RealGCResult) -> None:
    # The summary counts the same sets the lines list; a mismatch means this parser is wrong.
    assert result.summary is not None
    counted = (
        len(result.marked_blobs),
        len(result.eligible_blobs),
        len(result.eligible_manifests),
    )
    expected = (
        result.summary.marked,
        result.summary.blobs_eligible,
        result.summary.manifests_eligible,
    )
    if counted != expected:
        raise ValueError(
            f"parsed (marked, blobs, manifests) = {counted} but the summary says {expected}"
        )
