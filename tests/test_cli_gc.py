"""The gc command line: flags, output, exit codes, the checks before a sweep."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from regstore import layout
from regstore.cli import main
from regstore.lock import StoreLock
from tests.builders import age_store, build_store


def run(argv, env=None):
    out, err = io.StringIO(), io.StringIO()
    old = dict(os.environ)
    try:
        if env:
            os.environ.update(env)
        code = main(argv, out=out, err=err)
    finally:
        os.environ.clear()
        os.environ.update(old)
    return code, out.getvalue(), err.getvalue()


def snapshot(root):
    files = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            files[os.path.relpath(p, root)] = (open(p, "rb").read(), st.st_mtime_ns)
        for n in dirnames:
            files[os.path.relpath(os.path.join(dirpath, n), root)] = None
    return files


@pytest.fixture
def store(tmp_path):
    b, d = build_store(tmp_path / "root", {"app": {"v1": [b"a", b"shared"]},
                                           "lib": {"v1": [b"shared"]}})
    b.orphan = b.blob(b"orphan")
    b.old = b.image("app", [b"old"])
    age_store(b.root)
    return b


def config(tmp_path, root, readonly=True):
    p = tmp_path / "config.yml"
    p.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n"
                 f"  maintenance:\n    readonly:\n      enabled: {str(readonly).lower()}\n")
    return p


def test_dry_run_prints_summary_and_items_and_changes_no_byte(store):
    before = snapshot(store.root)
    code, out, err = run(["gc", "--dry-run", "--root", str(store.root)])
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("") and "blobs marked, 1 blobs (6 B) and 0 manifests" in lines[0]
    assert f"blob eligible for deletion: {store.orphan} (6 B)" in lines
    assert snapshot(store.root) == before
    assert not (store.root / ".regstore").exists(), "a dry run creates no lock file"


def test_registry_short_flags_work_unchanged(store, tmp_path):
    code, out, _ = run(["gc", "-d", "-m", str(config(tmp_path, store.root))])
    assert code == 0
    assert f"app: manifest eligible for deletion: {store.old}" in out.splitlines()


def test_quiet_prints_nothing_on_success_and_sweeps(store, tmp_path):
    code, out, err = run(["gc", "-q", "-m", str(config(tmp_path, store.root))])
    assert (code, out, err) == (0, "", "")
    assert not store.path(layout.blob_dir(store.orphan)).exists()
    assert not store.path(layout.revision_dir("app", store.old)).exists()


def test_json_report_is_documented_shape(store, tmp_path):
    code, out, _ = run(["gc", "-m", "--json", str(config(tmp_path, store.root))])
    doc = json.loads(out)
    assert code == doc["exit_code"] == 0
    assert doc["format"] == 1 and doc["command"] == "gc" and doc["complete"] is True
    s = doc["summary"]
    assert s["manifests_eligible"] == 1 and s["removed"] == len(doc["items"])
    assert s["failed"] == 0 and s["bytes_removed"] == s["bytes_eligible"] > 0
    assert {i["kind"] for i in doc["items"]} == {"blob", "manifest", "layer-link", "tag-index"} \
        - {"tag-index"}


def test_not_read_only_refuses_with_exit_4_unless_forced(store, tmp_path):
    cfg = config(tmp_path, store.root, readonly=False)
    before = snapshot(store.root)
    code, out, err = run(["gc", str(cfg)])
    assert code == 4 and "read-only" in err and "--force" in err
    assert snapshot(store.root) == before
    code, _, _ = run(["gc", "--force", "-q", str(cfg)])
    assert code == 0 and not store.path(layout.blob_dir(store.orphan)).exists()


def test_incomplete_mark_sweeps_nothing_exit_6_and_names_the_file(store, tmp_path):
    victim = layout.blob_data(store.old)
    store.path(victim).write_bytes(b"\x00garbage")
    before = snapshot(store.root)
    code, out, err = run(["gc", str(config(tmp_path, store.root))])
    assert code == 6
    assert victim in err or store.old in err
    assert "invalid-manifest" in err and "nothing was swept" in err
    assert {k: v for k, v in snapshot(store.root).items() if not k.startswith(".regstore")} \
        == before
    code, _, _ = run(["gc", "-q", "--ignore-broken-manifests", str(config(tmp_path, store.root))])
    assert code == 0 and not store.path(layout.blob_dir(store.orphan)).exists()


def test_locked_store_exit_5(store, tmp_path):
    with StoreLock(store.root, "regstore gc"):
        code, _, err = run(["gc", str(config(tmp_path, store.root))])
        assert code == 5 and "locked" in err
        code, _, _ = run(["gc", "--dry-run", "--root", str(store.root)])
        assert code == 5


def test_stale_lock_is_reported_and_taken_over(store, tmp_path):
    lock = store.root / ".regstore" / "lock"
    lock.parent.mkdir()
    lock.write_text(json.dumps({"pid": 999999, "host": "h", "command": "regstore gc",
                                "started": 0}))
    code, out, err = run(["gc", str(config(tmp_path, store.root))])
    assert code == 0 and "stale lock" in err and "999999" in err


@pytest.mark.parametrize("argv,code,words", [
    (["gc", "--root", "/nonexistent/regstore-test"], 3, "does not exist"),
    (["gc", "--bogus"], 2, "unrecognized"),
])
def test_fatal_problems_have_their_exit_codes(argv, code, words, capsys):
    try:
        got, out, err = run(argv)
    except SystemExit as exc:  # argparse exits for usage errors
        got, err = exc.code, capsys.readouterr().err
    assert got == code and words in err


def test_root_that_is_not_a_store(tmp_path):
    (tmp_path / "x").mkdir()
    code, _, err = run(["gc", "--dry-run", "--root", str(tmp_path / "x")])
    assert code == 3 and "docker/registry/v2" in err


def test_unsupported_driver_is_named(tmp_path):
    p = tmp_path / "config.yml"
    p.write_text("version: 0.1\nstorage:\n  gcs:\n    bucket: b\n")
    code, _, err = run(["gc", "--dry-run", str(p)])
    assert code == 3 and "gcs" in err


def test_config_from_environment_variable(store, tmp_path):
    cfg = config(tmp_path, store.root)
    code, out, _ = run(["gc", "--dry-run"], env={"REGISTRY_CONFIGURATION_PATH": str(cfg)})
    assert code == 0 and store.orphan in out


def test_removal_failure_exit_1_and_listed(store, tmp_path, monkeypatch):
    # Tests run as root here, where permissions cannot make a removal fail: the store's
    # removal is made to fail for one key instead, as a read-only mount would.
    import errno
    import regstore.holding
    real_rename = os.rename
    victim = layout.blob_dir(store.orphan)

    def failing(src, dst):
        if str(src).endswith(victim):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_rename(src, dst)

    monkeypatch.setattr(regstore.holding.os, "rename", failing)
    code, out, err = run(["gc", "-m", str(config(tmp_path, store.root))])
    assert code == 1
    assert f"FAILED to remove blob {victim}: cannot move into the holding area: " \
           "Read-only file system" in err
    assert not store.path(layout.revision_dir("app", store.old)).exists()


def test_console_script_and_module_entry_point(store):
    proc = subprocess.run([sys.executable, "-m", "regstore", "gc", "--dry-run", "--json",
                           "--root", str(store.root)], capture_output=True, text=True)
    assert proc.returncode == 0 and json.loads(proc.stdout)["summary"]["blobs_eligible"] == 1
    # Not a terminal: no progress bar escapes on stderr.
    assert proc.stderr == ""


def test_help_documents_exit_codes():
    proc = subprocess.run([sys.executable, "-m", "regstore", "gc", "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0
    for code in ("0 ", "1 ", "3 ", "4 ", "5 ", "6 "):
        assert f"\n  {code}" in proc.stdout


def test_the_command_exits_with_main_s_code_and_its_whole_output(tmp_path):
    # `regstore` leaves by os._exit once main returns: its output must be flushed first.
    from tests.support import copy_fixture

    root = copy_fixture("mixed", tmp_path / "mixed")
    done = subprocess.run([sys.executable, "-m", "regstore", "gc", "--dry-run", "--json",
                           "--min-age", "0", "--root", str(root)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["blobs_eligible"] == 7
    missing = subprocess.run([sys.executable, "-m", "regstore", "verify", "--root",
                              str(tmp_path / "nowhere")], capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode == 3 and "does not exist" in missing.stderr


def test_a_reader_that_goes_away_ends_the_output_not_the_run(tmp_path):
    # `regstore gc --dry-run config.yml | head -1`: the rest of the lines meet a closed pipe.
    from tests.support import copy_fixture

    root = copy_fixture("mixed", tmp_path / "mixed")
    log = tmp_path / "run.log"
    proc = subprocess.Popen([sys.executable, "-m", "regstore", "gc", "--dry-run", "--min-age",
                             "0", "--log-file", str(log), "--root", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert "eligible for deletion" in log.read_text()  # the run went on to its end


def test_a_gc_leaves_its_inventory_mark_and_plan_to_whoever_asked_to_keep_them(store, tmp_path):
    from regstore.inventory import Inventory
    from regstore.mark import MarkResult
    from regstore.sweep import SweepPlan

    kept: list[object] = []
    code = main(["gc", "--dry-run", "--json", str(config(tmp_path, store.root))],
                out=io.StringIO(), err=io.StringIO(), kept=kept)
    assert code == 0
    assert [type(x) for x in kept] == [Inventory, MarkResult, SweepPlan]
    assert store.orphan in {item.digest for item in kept[2].items}
