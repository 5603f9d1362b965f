"""Fixtures for the core (Capture/Injector/SeqChecker) tests: a veth pair between two fresh,
unnamed namespaces, built with netring.netns (nothing ever appears in the root namespace)."""
import pytest

from core_net import IS_ROOT, VethPair


def pytest_configure(config):
    config.addinivalue_line("markers", "roundtrip: frames round-trip tests (run by ci/conformance)")


@pytest.fixture(scope="module")
def veth():
    """A module-scoped :class:`VethPair` (tests create their own Capture/Injector on it)."""
    if not IS_ROOT:
        pytest.skip("needs CAP_NET_ADMIN and CAP_SYS_ADMIN to build namespaces and veth; run as root")
    pair = VethPair()
    yield pair
    pair.close()
