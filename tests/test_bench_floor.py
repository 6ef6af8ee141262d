"""The floor of bench/floor.py does the work it says: every repository and every manifest
revision of a store, however many processes share them."""

from __future__ import annotations

from bench.floor import floor, main
from bench.generate import generate
from regstore.inventory import take_inventory
from regstore.store import FilesystemStore


def test_the_floor_reads_every_repository_and_live_revision(tmp_path):
    root = tmp_path / "store"
    generate(root, 300, seed=5, jobs=1)
    inv = take_inventory(FilesystemStore(root))
    revisions = set().union(*(set(r.revisions) for r in inv.repositories.values()))
    assert revisions  # the generator's deleted manifests (no link) are not among them
    for processes in (1, 2, 3):
        for history in (False, True):
            found = floor(root, history, processes)
            assert found["repository_count"] == len(inv.repositories)
            assert found["manifest_count"] == len(revisions)
            assert abs(found["total"] - sum(found[k] for k in (
                "repositories", "scan", "blobs", "manifests"))) < 1e-6


def test_the_floor_refuses_what_is_not_a_store(tmp_path, capsys):
    assert main([str(tmp_path), "--runs", "1"]) == 2
    assert "holds no docker/registry/v2/repositories" in capsys.readouterr().err
