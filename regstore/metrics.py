"""Prometheus metrics for node_exporter's textfile collector (``--metrics-file``).

The file is written whole or not at all: to a temporary file in the same directory, fsynced,
then renamed over the old one, so the collector never reads half a run. Every metric carries a
``command`` label (gc or verify) so both commands can write to files in one directory.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

PREFIX = "regstore_"


class Metric:
    """One metric family: name, help, type, and samples (labels, value)."""

    def __init__(self, name: str, help_text: str, kind: str = "gauge") -> None:
        self.name = PREFIX + name
        self.help = help_text
        self.kind = kind
        self.samples: list[tuple[dict[str, str], float]] = []

    def add(self, value: float, **labels: str) -> "Metric":
        self.samples.append((labels, float(value)))
        return self

    def render(self, common: Mapping[str, str]) -> str:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        for labels, value in self.samples:
            merged = {**common, **labels}
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(merged.items()))
            lines.append(f"{self.name}{{{text}}} {_number(value)}")
        return "\n".join(lines)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 2 ** 53 else repr(value)


def render(metrics: Iterable[Metric], common: Mapping[str, str]) -> str:
    """The text exposition format of ``metrics``, each sample labelled with ``common``."""
    return "\n".join(m.render(common) for m in metrics if m.samples) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader sees the old file or the new one, never a mix."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # node_exporter usually runs as another user
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run_metrics(*, started: float, seconds: float, exit_code: int) -> list[Metric]:
    """The metrics every run writes: when, how long, and how it ended."""
    return [
        Metric("last_run_timestamp_seconds", "When the run started (Unix time).").add(started),
        Metric("last_run_duration_seconds", "How long the run took.").add(seconds),
        Metric("last_run_exit_code", "The run's exit code (0 is success; see regstore --help)."
               ).add(exit_code),
        Metric("last_run_success", "1 when the run exited 0, else 0.").add(exit_code == 0),
    ]


def gc_metrics(doc: Mapping[str, object]) -> list[Metric]:
    """Metrics of a gc run, from its JSON report (so the two always agree)."""
    s = doc.get("summary") or {}
    assert isinstance(s, Mapping)
    get = lambda key: float(s.get(key) or 0)  # noqa: E731 - a local shorthand
    return [
        Metric("gc_blobs_total", "Blobs in the store.").add(get("blobs_total")),
        Metric("gc_blobs_marked", "Digests reachable from live manifests.").add(
            get("blobs_marked")),
        Metric("gc_eligible", "Items the plan removes, by kind.").add(
            get("blobs_eligible"), kind="blob").add(
            get("manifests_eligible"), kind="manifest").add(
            get("layer_links_eligible"), kind="layer-link").add(
            get("tag_index_entries_eligible"), kind="tag-index").add(
            get("uploads_eligible"), kind="upload").add(
            get("repositories_eligible"), kind="repository"),
        Metric("gc_bytes_eligible", "Bytes of the blobs the plan removes.").add(
            get("bytes_eligible")),
        Metric("gc_protected", "Items the grace period kept.").add(get("protected")),
        Metric("gc_removed", "Items removed (0 in a dry run).").add(get("removed")),
        Metric("gc_bytes_removed", "Bytes of the blobs removed (0 in a dry run).").add(
            get("bytes_removed")),
        Metric("gc_failed", "Items that could not be removed.").add(get("failed")),
        Metric("gc_skipped", "Items kept because they changed after the plan.").add(
            get("skipped")),
        Metric("gc_errors", "Errors that made the mark incomplete.").add(get("errors")),
        Metric("gc_complete", "1 when the mark was complete.").add(bool(doc.get("complete"))),
    ]


def verify_metrics(doc: Mapping[str, object], kinds: Iterable[str]) -> list[Metric]:
    """Metrics of a verify run, from its JSON report. Every known finding kind gets a sample,
    0 included, so an alert on ``> 0`` does not flap on absence."""
    s = doc.get("summary") or {}
    assert isinstance(s, Mapping)
    cov = s.get("coverage") or {}
    assert isinstance(cov, Mapping)
    counts: dict[tuple[str, str], int] = {}
    for f in doc.get("findings") or []:  # type: ignore[union-attr]
        key = (f["kind"], f["severity"])
        counts[key] = counts.get(key, 0) + 1
    findings = Metric("verify_findings", "Findings of the run, by kind and severity.")
    for kind in sorted(set(kinds) | {k for k, _ in counts}):
        for severity in ("error", "warning", "hint"):
            findings.add(counts.get((kind, severity), 0), kind=kind, severity=severity)
    oldest = cov.get("oldest_verification_age")
    metrics = [
        Metric("verify_errors", "Errors found.").add(float(s.get("errors") or 0)),
        findings,
        Metric("verify_blobs_hashed", "Blobs re-hashed by the run.").add(
            float(s.get("blobs_hashed") or 0)),
        Metric("verify_bytes_hashed", "Bytes re-hashed by the run.").add(
            float(s.get("bytes_hashed") or 0)),
        Metric("verify_blobs_total", "Blobs in the store.").add(float(s.get("blobs_total") or 0)),
        Metric("verify_coverage_ratio", "Share of the store's bytes this run re-hashed.").add(
            float(cov.get("bytes_fraction") or 0)),
    ]
    if oldest is not None:
        metrics.append(Metric("verify_oldest_verification_age_seconds",
                              "Age of the least recent verification of any blob (rotation)."
                              ).add(float(oldest)))
    if cov.get("never_verified") is not None:
        metrics.append(Metric("verify_never_verified_blobs", "Blobs no run has verified yet."
                              ).add(float(cov.get("never_verified") or 0)))
    return metrics
