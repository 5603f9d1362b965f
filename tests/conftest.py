"""Suite-wide settings: hypothesis profiles and the leak check.

``ci`` (selected when $CI is set, or with HYPOTHESIS_PROFILE=ci) keeps property tests fast and
deterministic; ``dev`` (the default) explores more. Tests doing I/O set ``deadline=None`` themselves.
"""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=30, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

# Suite-wide leak check: after the session this process must hold no namespace fds, packet/XDP
# sockets, BPF fds, nrt-<pid>-* namespaces or new root-namespace links (tests/testkit/leakcheck.py).
from testkit.leakcheck import netring_leak_check  # noqa: E402,F401  (an autouse session fixture)
