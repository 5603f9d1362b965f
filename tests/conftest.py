"""Suite-wide settings: hypothesis profiles.

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
