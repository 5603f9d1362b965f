"""Fixtures for the core (Capture/Injector/SeqChecker) tests: a veth pair between two fresh,
unnamed namespaces, built with netring.netns (nothing ever appears in the root namespace)."""
import pytest

from core_net import VethPair

from netring_testkit.plugin import require


def pytest_configure(config):
    config.addinivalue_line("markers", "roundtrip: frames round-trip tests (run by ci/conformance)")


@pytest.fixture(scope="module")
def veth():
    """A module-scoped :class:`VethPair` (tests create their own Capture/Injector on it)."""
    require()
    pair = VethPair()
    yield pair
    pair.close()
