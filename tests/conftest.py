"""Shared test setup: the hypothesis profiles and the marker for real-registry tests."""

from __future__ import annotations

import os
from typing import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.support.ceph import Ceph, ceph_available
from tests.support.registry import registry_binary

# CI runs a fixed, deterministic set of examples; a developer can ask for more with
# HYPOTHESIS_PROFILE=dev.
settings.register_profile("ci", derandomize=True, max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip real-registry tests where docker-registry is missing, and Ceph tests where the
    Ceph binaries are, unless the run requires them (REGSTORE_REQUIRE_REGISTRY=1 and
    REGSTORE_REQUIRE_CEPH=1, set by .ci/run): there a missing one is a failure."""
    skips = []
    if registry_binary() is None and os.environ.get("REGSTORE_REQUIRE_REGISTRY") != "1":
        skips.append(("registry", pytest.mark.skip(
            reason="docker-registry (Debian's CNCF Distribution 2.8) not on PATH")))
    if not ceph_available() and os.environ.get("REGSTORE_REQUIRE_CEPH") != "1":
        skips.append(("ceph", pytest.mark.skip(
            reason="Ceph (ceph-mon, ceph-osd, radosgw) not installed")))
    for item in items:
        for marker, skip in skips:
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def ceph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ceph]:
    """A single-node Ceph with radosgw on 127.0.0.1 for the whole session, started on first
    use (about a second) and stopped by its daemons' PIDs at the end."""
    cluster = Ceph(tmp_path_factory.mktemp("ceph"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()
