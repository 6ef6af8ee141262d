"""The cron entry point, metrics, logs and the operator's commands (du, explain)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from regstore import layout
from regstore.cli import main
from regstore.lock import StoreLock
from tests.builders import age_store
from tests.support import copy_fixture, fixture_record

ROOT = Path(__file__).resolve().parent.parent
NIGHTLY = ROOT / "contrib" / "regstore-nightly"


def store_and_config(tmp_path: Path, readonly: bool = False, cache: str | None = None):
    root = copy_fixture("mixed", tmp_path / "store")
    age_store(root)
    config = tmp_path / "config.yml"
    text = (f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n"
            f"  maintenance:\n    readonly:\n      enabled: {str(readonly).lower()}\n")
    if cache:
        text += f"  cache:\n    blobdescriptor: {cache}\n"
    config.write_text(text)
    return root, config


def nightly(config: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # The regstore of this checkout, as an installed console script would be.
    program = tmp_path / "regstore"
    program.write_text(f"#!/bin/sh\nexec {sys.executable} -m regstore \"$@\"\n")
    program.chmod(0o755)
    env = dict(os.environ, REGSTORE_CONFIG=str(config), REGSTORE_METRICS_DIR=str(tmp_path),
               REGSTORE_LOG_FILE=str(tmp_path / "regstore.log"), REGSTORE=str(program),
               PYTHONPATH=str(ROOT))
    return subprocess.run(["sh", str(NIGHTLY)], env=env, capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)


def metrics(path: Path) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_nightly_is_quiet_and_exits_0_on_a_healthy_store(tmp_path):
    root, config = store_and_config(tmp_path)
    proc = nightly(config, tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    gc = metrics(tmp_path / "regstore-gc.prom")
    assert gc["regstore_last_run_exit_code", (("command", "gc"),)] == 0
    assert gc["regstore_gc_removed", (("command", "gc"),)] > 0, "the orphans were swept"
    verify = metrics(tmp_path / "regstore-verify.prom")
    assert verify["regstore_verify_errors", (("command", "verify"),)] == 0
    log = (tmp_path / "regstore.log").read_text().splitlines()
    assert any("start: regstore verify" in line for line in log)
    assert any("end: exit 0" in line for line in log)
    assert all(line[:4].isdigit() and "regstore[" in line for line in log)


def test_nightly_reports_a_corrupt_layer_and_exits_1(tmp_path):
    root, config = store_and_config(tmp_path)
    record = fixture_record("mixed")
    layer = next(b["digest"] for b in record["blobs"] if b["label"] == "base-1")
    data = root / layout.V2_PREFIX / layout.blob_data(layer)
    raw = bytearray(data.read_bytes())
    raw[10] ^= 0xFF
    data.write_bytes(bytes(raw))
    proc = nightly(config, tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "blob-corrupt" in proc.stderr and layer in proc.stderr
    assert len(proc.stderr.splitlines()) < 20, "a short report, not a wall of text"
    verify = metrics(tmp_path / "regstore-verify.prom")
    assert verify["regstore_verify_findings", (("command", "verify"), ("kind", "blob-corrupt"),
                                               ("severity", "error"))] == 1
    assert verify["regstore_last_run_success", (("command", "verify"),)] == 0


def test_overlapping_runs_are_refused_by_the_lock(tmp_path):
    root, config = store_and_config(tmp_path)
    with StoreLock(root, "regstore gc"):
        proc = nightly(config, tmp_path)
    assert proc.returncode == 5
    assert "locked" in proc.stderr


def test_gc_metrics_equal_the_json_report(tmp_path):
    root, config = store_and_config(tmp_path, readonly=True)
    out = io.StringIO()
    code = main(["gc", "-m", "--json", "--metrics-file", str(tmp_path / "m.prom"), str(config)],
                out=out, err=io.StringIO())
    doc = json.loads(out.getvalue())
    assert code == 0
    m = metrics(tmp_path / "m.prom")
    c = (("command", "gc"),)
    s = doc["summary"]
    assert m["regstore_gc_blobs_marked", c] == s["blobs_marked"]
    assert m["regstore_gc_eligible", (("command", "gc"), ("kind", "blob"))] == s["blobs_eligible"]
    assert m["regstore_gc_eligible", (("command", "gc"), ("kind", "manifest"))] == \
        s["manifests_eligible"]
    assert m["regstore_gc_bytes_removed", c] == s["bytes_removed"] > 0
    assert m["regstore_gc_removed", c] == s["removed"]
    assert m["regstore_gc_complete", c] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".m.prom")], "no temp left"


def test_metrics_of_a_refused_run_say_so(tmp_path):
    root, config = store_and_config(tmp_path, readonly=False)
    code = main(["gc", "--metrics-file", str(tmp_path / "m.prom"), str(config)],
                out=io.StringIO(), err=io.StringIO())
    assert code == 4
    m = metrics(tmp_path / "m.prom")
    assert m["regstore_last_run_exit_code", (("command", "gc"),)] == 4
    assert m["regstore_last_run_success", (("command", "gc"),)] == 0


def test_cache_advice_after_a_sweep(tmp_path):
    root, config = store_and_config(tmp_path, readonly=True, cache="inmemory")
    err = io.StringIO()
    assert main(["gc", "-q", str(config)], out=io.StringIO(), err=err) == 0
    assert "restart it" in err.getvalue() and "distribution#1803" in err.getvalue()


def test_du_json_and_csv_agree(tmp_path):
    root, config = store_and_config(tmp_path)
    out = io.StringIO()
    assert main(["du", "--json", str(config)], out=out, err=io.StringIO()) == 0
    doc = json.loads(out.getvalue())
    s = doc["summary"]
    assert sum(r["unique_bytes"] for r in doc["repositories"]) + s["shared_bytes"] == \
        s["reachable_bytes"]
    assert s["reachable_bytes"] + s["orphan_bytes"] == s["total_bytes"]
    out = io.StringIO()
    assert main(["du", "--csv", "--sort", "name", str(config)], out=out, err=io.StringIO()) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("repository,reachable_bytes")
    rows = {line.split(",")[0].strip('"'): int(line.split(",")[1]) for line in lines[1:]}
    assert rows == {r["repository"]: r["reachable_bytes"] for r in doc["repositories"]}
    assert list(rows) == sorted(rows)


def test_explain_agrees_with_gc(tmp_path):
    root, config = store_and_config(tmp_path, readonly=True)
    record = fixture_record("mixed")
    orphan = record["orphan_blobs"][0]["digest"]
    child = next(m for m in record["manifests"] if m["repo"] == "multi/docker" and
                 m["kind"] == "image")["digest"]
    for digest, kept, kept_m in ((orphan, False, False), (child, True, True)):
        out = io.StringIO()
        assert main(["explain", "--json", digest, str(config)], out=out,
                    err=io.StringIO()) == 0
        doc = json.loads(out.getvalue())
        assert (doc["kept_by_gc"], doc["kept_by_gc_m"]) == (kept, kept_m)
    doc = json.loads(out.getvalue())
    assert any(c.startswith("multi/docker:latest -> ") for c in doc["chains_m"])
    out = io.StringIO()
    main(["gc", "--json", "-m", str(config)], out=out, err=io.StringIO())
    swept = {i["digest"] for i in json.loads(out.getvalue())["items"] if i["kind"] == "blob"}
    assert orphan in swept and child not in swept


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed (Debian package systemd)")
def test_systemd_units_pass_systemd_analyze(tmp_path):
    for name in ("regstore-nightly.service", "regstore-nightly.timer"):
        text = (ROOT / "contrib" / name).read_text()
        # The unit names its installed path; point it at the script in this checkout.
        (tmp_path / name).write_text(text.replace("/usr/local/bin/regstore-nightly",
                                                  str(NIGHTLY)))
    proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "regstore-nightly.service"),
                           str(tmp_path / "regstore-nightly.timer")], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_command_help_reads_like_a_man_page():
    for command in ("gc", "verify", "du", "explain", "restore", "purge-quarantine"):
        proc = subprocess.run([sys.executable, "-m", "regstore", command, "--help"],
                              capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 0
        assert "exit codes:" in proc.stdout, command
        if command in ("gc", "verify", "du", "explain"):
            assert "examples:" in proc.stdout, command
