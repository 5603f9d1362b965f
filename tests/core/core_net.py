"""Test topology for the core tests: a veth pair between two fresh, unnamed namespaces."""
import pytest

from vethpair import VethPair  # noqa: F401  (the core tests' pair: tests/vethpair.py)


#: Namespaces, veth and packet sockets: the plugin's ``privileged`` marker (one rule for every test).
needs_root = pytest.mark.privileged
