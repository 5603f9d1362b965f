"""Fixtures for the AF_XDP tests: a module-scoped veth pair in two unnamed namespaces."""
import pytest

from xsk_net import VethPair

from netring_testkit.plugin import require


@pytest.fixture(scope="module")
def veth():
    """A :class:`xsk_net.VethPair` (``va`` in ``a`` — ``vb`` in ``b``); tests open their own sockets on it."""
    require()
    pair = VethPair()
    yield pair
    pair.close()
