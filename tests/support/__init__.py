"""Test support: the committed fixture stores, the real registry, and its garbage collector.

Fixture stores live in ``fixtures/<name>/`` next to a record ``fixtures/<name>.json`` of how
``fixtures/build.py`` made them. Tests never touch them in place: ``copy_fixture`` copies one
into a temporary directory first.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent.parent / "fixtures"


def fixture_names() -> list[str]:
    """Return the names of the committed fixture stores (those with a ``<name>.json`` record)."""
    return sorted(p.stem for p in FIXTURES.glob("*.json") if (FIXTURES / p.stem).is_dir())


def fixture_record(name: str) -> dict[str, Any]:
    """Return the record ``fixtures/<name>.json`` of what the builder did to make the store."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def copy_fixture(name: str, dest: Path) -> Path:
    """Copy the fixture store ``name`` to ``dest`` (which must not exist) and return ``dest``, the
    storage root holding ``docker/registry/v2``.
    """
    shutil.copytree(FIXTURES / name, dest, symlinks=True)
    # git keeps no empty directories, but the registry leaves some behind that matter (the
    # revision directory of a deleted manifest, an emptied tags directory); the record lists
    # them so the copy is the store the registry wrote.
    for relative in fixture_record(name).get("empty_dirs", []):
        (dest / relative).mkdir(parents=True, exist_ok=True)
    return dest


def run_json(argv: list[str]) -> tuple[int, dict[str, Any], str]:
    """Run regstore in-process with ``--json``: its exit code, JSON report and stderr."""
    from regstore.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = main(argv + ["--json"], out=out, err=err)
    return code, json.loads(out.getvalue()), err.getvalue()
