"""Rendering results for people (text) and programs (JSON). Pure functions: no printing.

The JSON report of ``gc`` (``format`` 1) is documented in the README, that of ``verify`` in the
docstring of :mod:`regstore.verify`; fields are only ever added, never renamed or removed,
within one format number.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Iterable

from regstore import __version__
from regstore.findings import ERROR, HINT, SEVERITIES, Finding
from regstore.sweep import BLOB, LAYER_LINK, MANIFEST, REPOSITORY, TAG_INDEX, UPLOAD, ApplyResult, \
    SweepPlan

if TYPE_CHECKING:
    from regstore.verify import VerifyReport

JSON_FORMAT = 1


def human_bytes(n: int) -> str:
    """``n`` bytes as a short human string (binary units)."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def plan_summary(plan: SweepPlan) -> str:
    """The one-line summary, in the registry GC's words plus what regstore adds."""
    blobs = plan.of_kind(BLOB)
    line = (f"{plan.marked} blobs marked, {len(blobs)} blobs ({human_bytes(plan.blob_bytes)}) "
            f"and {len(plan.of_kind(MANIFEST))} manifests eligible for deletion, "
            f"{len(plan.of_kind(LAYER_LINK))} layer links and "
            f"{len(plan.of_kind(TAG_INDEX))} tag index entries with them")
    extra = [f"{len(plan.of_kind(k))} {k}s" for k in (UPLOAD, REPOSITORY) if plan.of_kind(k)]
    if extra:
        line += "; also " + " and ".join(extra)
    if plan.protected:
        line += f"; {len(plan.protected)} items kept by the grace period"
    return line


def plan_lines(plan: SweepPlan) -> Iterable[str]:
    """One line per item of the plan, in removal order, then one per item the grace period
    protects."""
    for item in plan.items:
        if item.kind in (UPLOAD, REPOSITORY):
            yield f"{item.repository}: {item.kind} eligible for deletion: " \
                  f"{item.key.rsplit('/', 1)[-1] if item.kind == UPLOAD else item.repository}" \
                  f"{f' ({human_bytes(item.size)})' if item.size else ''}"
        elif item.kind == BLOB:
            yield f"blob eligible for deletion: {item.digest} ({human_bytes(item.size)})"
        elif item.kind == MANIFEST:
            yield f"{item.repository}: manifest eligible for deletion: {item.digest}"
        elif item.kind == LAYER_LINK:
            yield f"{item.repository}: layer link eligible for deletion: {item.digest} " \
                  f"({item.reason})"
        else:
            yield f"{item.repository}: tag index entry eligible for deletion: " \
                  f"{item.tag}@{item.digest}"
    for item in plan.protected:
        where = f"{item.repository}: " if item.repository else ""
        yield f"{where}{item.kind} {item.digest} {item.reason}"


def apply_lines(result: ApplyResult) -> Iterable[str]:
    """What a real sweep did: a summary, then every skipped or failed item."""
    blobs = [i for i in result.removed if i.kind == BLOB]
    yield (f"removed {len(blobs)} blobs ({human_bytes(sum(i.size for i in blobs))}), "
           f"{sum(i.kind == MANIFEST for i in result.removed)} manifests, "
           f"{sum(i.kind == LAYER_LINK for i in result.removed)} layer links, "
           f"{sum(i.kind == TAG_INDEX for i in result.removed)} tag index entries")
    for item, why in result.skipped:
        yield f"kept {item.kind} {item.digest}: {why}"
    for item, why in result.failed:
        yield f"FAILED to remove {item.kind} {item.key}: {why}"


def finding_line(f: Finding) -> str:
    """A finding as one line: severity, where, what."""
    where = " ".join(x for x in (f.repository, f.digest) if x) or (f.key or "")
    images = f" [breaks {', '.join(f.images)}]" if f.images and f.severity == ERROR else ""
    return f"{f.severity}: {f.kind}: {where}: {f.message}{images}"


def gc_json(*, store: str, dry_run: bool, delete_untagged: bool, plan: SweepPlan | None,
            findings: list[Finding], complete: bool, applied: ApplyResult | None,
            exit_code: int, notes: list[str]) -> dict[str, object]:
    """The machine report of a gc run."""
    items = plan.items if plan else []
    summary: dict[str, object] = {
        "blobs_total": plan.blobs_total if plan else None,
        "blobs_marked": plan.marked if plan else None,
        "blobs_eligible": sum(i.kind == BLOB for i in items),
        "bytes_eligible": sum(i.size for i in items if i.kind == BLOB),
        "manifests_eligible": sum(i.kind == MANIFEST for i in items),
        "layer_links_eligible": sum(i.kind == LAYER_LINK for i in items),
        "tag_index_entries_eligible": sum(i.kind == TAG_INDEX for i in items),
        "uploads_eligible": sum(i.kind == UPLOAD for i in items),
        "repositories_eligible": sum(i.kind == REPOSITORY for i in items),
        "protected": len(plan.protected) if plan else 0,
        "errors": sum(f.severity == ERROR for f in findings),
    }
    doc: dict[str, object] = {
        "format": JSON_FORMAT, "regstore": __version__, "command": "gc", "store": store,
        "dry_run": dry_run, "delete_untagged": delete_untagged, "complete": complete,
        "exit_code": exit_code, "summary": summary, "items": [i.as_dict() for i in items],
        "protected": [i.as_dict() for i in plan.protected] if plan else [],
        "findings": [f.as_dict() for f in findings], "notes": notes,
    }
    if applied is not None:
        summary["removed"] = len(applied.removed)
        summary["bytes_removed"] = sum(i.size for i in applied.removed if i.kind == BLOB)
        summary["skipped"] = len(applied.skipped)
        summary["failed"] = len(applied.failed)
        doc["skipped"] = [dict(i.as_dict(), why=w) for i, w in applied.skipped]
        doc["failed"] = [dict(i.as_dict(), why=w) for i, w in applied.failed]
    return doc


# --- verify -------------------------------------------------------------------------------

#: how many hints of one kind the text report lists (--json lists all)
HINTS_SHOWN = 10


def verify_finding_lines(findings: list[Finding], hints_shown: int = HINTS_SHOWN) -> Iterable[str]:
    """The findings of a verify run grouped by severity (errors first), then by kind; hints of
    a kind beyond ``hints_shown`` are counted, not listed."""
    titles = {"error": "errors", "warning": "warnings", "hint": "hints"}
    for severity in SEVERITIES:
        group = [f for f in findings if f.severity == severity]
        if not group:
            continue
        yield f"{titles[severity]} ({len(group)}):"
        kinds: dict[str, list[Finding]] = {}
        for f in group:
            kinds.setdefault(f.kind, []).append(f)
        for kind, items in kinds.items():
            shown = items[:hints_shown] if severity == HINT else items
            for f in shown:
                yield "  " + finding_line(f)
            if len(items) > len(shown):
                yield f"  … and {len(items) - len(shown)} more {kind} (--json lists them all)"


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def human_duration(seconds: float) -> str:
    """A duration as a short human string."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def verify_summary(report: VerifyReport, state: str) -> list[str]:
    """The summary of a verify run: what was checked, how much was hashed, where the rotation
    stands (``state``: ok, absent, corrupt or disabled) and the leftovers."""
    cov = report.coverage
    counts = ", ".join(f"{report.count(s)} {s}s" for s in ("error", "warning", "hint"))
    lines = [f"checked {report.repositories} repositories, {report.manifests} manifests, "
             f"{report.tags} tags, {report.layer_links} layer links and {cov.blobs_total} blobs "
             f"({human_bytes(cov.bytes_total)}): {counts}"]
    share = cov.bytes_hashed / cov.bytes_total if cov.bytes_total else 1.0
    hashed = (f"hashed {cov.blobs_hashed} of {cov.blobs_total} blobs, "
              f"{human_bytes(cov.bytes_hashed)} of {human_bytes(cov.bytes_total)} "
              f"({share:.0%}) in {human_duration(report.seconds)}")
    if report.metadata_only:
        hashed += "; --metadata-only: layer data was not hashed"
    if cov.stopped_by:
        hashed += f"; stopped by --{cov.stopped_by}"
    lines.append(hashed)
    end = report.started + report.seconds
    rotation = "rotation: " + ("no state kept (--no-state); " if state == "disabled" else
                               "the state file was corrupt and ignored; " if state == "corrupt"
                               else "")
    if cov.pass_started:
        rotation += f"pass started {_when(cov.pass_started)}, "
    rotation += ("complete" if cov.pass_complete else
                 f"{cov.blobs_due} blobs ({human_bytes(cov.bytes_due)}) still due")
    if cov.oldest_verified_at is not None:
        rotation += (f"; oldest verification {human_duration(end - cov.oldest_verified_at)} "
                     f"ago ({_when(cov.oldest_verified_at)})")
    if cov.never_verified:
        rotation += f"; {cov.never_verified} blobs never verified"
    lines.append(rotation)
    if report.orphan_blobs:
        lines.append(f"leftovers: {report.orphan_blobs} orphan blobs "
                     f"({human_bytes(report.orphan_bytes)}) that `regstore gc` would reclaim")
    return lines


def verify_json(*, store: str, report: VerifyReport, exit_code: int,
                quarantined: list[dict[str, object]], notes: list[str], state: str,
                state_file: str | None) -> dict[str, object]:
    """The machine report of a verify run (format in the docstring of regstore.verify)."""
    cov = report.coverage
    end = report.started + report.seconds
    kinds: dict[str, int] = {}
    for f in report.findings:
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    coverage: dict[str, object] = {
        "blobs_fraction": cov.blobs_hashed / cov.blobs_total if cov.blobs_total else 1.0,
        "bytes_fraction": cov.bytes_hashed / cov.bytes_total if cov.bytes_total else 1.0,
        "stopped_by": cov.stopped_by,
        "pass_started": cov.pass_started,
        "new_pass": cov.new_pass,
        "pass_complete": cov.pass_complete,
        "blobs_due": cov.blobs_due,
        "bytes_due": cov.bytes_due,
        "never_verified": cov.never_verified,
        "oldest_verified_at": cov.oldest_verified_at,
        "oldest_verification_age": None if cov.oldest_verified_at is None
        else end - cov.oldest_verified_at,
        "state": state,
        "state_file": state_file,
    }
    summary: dict[str, object] = {
        "errors": report.count("error"), "warnings": report.count("warning"),
        "hints": report.count("hint"), "kinds": kinds,
        "repositories": report.repositories, "manifests": report.manifests,
        "tags": report.tags, "layer_links": report.layer_links,
        "blobs_total": cov.blobs_total, "bytes_total": cov.bytes_total,
        "blobs_hashed": cov.blobs_hashed, "bytes_hashed": cov.bytes_hashed,
        "manifests_hashed": cov.manifests_hashed,
        "orphan_blobs": report.orphan_blobs, "orphan_bytes": report.orphan_bytes,
        "quarantined": len(quarantined), "coverage": coverage,
    }
    return {
        "format": JSON_FORMAT, "regstore": __version__, "command": "verify", "store": store,
        "metadata_only": report.metadata_only, "complete": cov.complete,
        "exit_code": exit_code, "started": report.started, "seconds": report.seconds,
        "summary": summary, "findings": [f.as_dict() for f in report.findings],
        "quarantined": quarantined, "notes": notes,
    }
