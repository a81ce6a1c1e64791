"""A registry server of our own on a free loopback port (one per test module), and a client for it."""

from __future__ import annotations

import pytest
from pyengine.testing.registry import RegistryClient, running_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry") / "root"
    with running_registry(root) as server:
        yield server


@pytest.fixture(scope="module")
def client(registry) -> RegistryClient:
    return RegistryClient(registry.url, registry.root)
