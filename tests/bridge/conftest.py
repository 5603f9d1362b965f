"""Fixtures of the Bridge tests: a module-scoped three-namespace chain (see bridge_net.py)."""
import pytest

from bridge_net import Chain

from netring_testkit.plugin import require


@pytest.fixture(scope="module")
def chain():
    """``a:va`` — ``m:ma`` / ``m:mb`` — ``b:vb``; a test puts its own Bridge between ma and mb."""
    require()
    c = Chain()
    yield c
    c.close()
