"""Shared test setup: the hypothesis profiles and the marker for real-registry tests."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.support.registry import registry_binary

# CI runs a fixed, deterministic set of examples; a developer can ask for more with
# HYPOTHESIS_PROFILE=dev.
settings.register_profile("ci", derandomize=True, max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip real-registry tests where docker-registry is missing, unless the run requires it
    (REGSTORE_REQUIRE_REGISTRY=1, set by .ci/run): there a missing registry is a failure."""
    if registry_binary() is not None or os.environ.get("REGSTORE_REQUIRE_REGISTRY") == "1":
        return
    skip = pytest.mark.skip(reason="docker-registry (Debian's CNCF Distribution 2.8) not on PATH")
    for item in items:
        if "registry" in item.keywords:
            item.add_marker(skip)
