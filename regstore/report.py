"""Rendering results for people (text) and programs (JSON). Pure functions: no printing.

The JSON report of ``gc`` (``format`` 1) is documented in the README; fields are only ever
added, never renamed or removed, within one format number.
"""

from __future__ import annotations

from typing import Iterable

from regstore import __version__
from regstore.findings import ERROR, Finding
from regstore.sweep import BLOB, LAYER_LINK, MANIFEST, REPOSITORY, TAG_INDEX, UPLOAD, ApplyResult, \
    SweepPlan

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
