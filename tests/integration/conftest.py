"""The cluster fixtures live in tests/cluster.py (a plugin of tests/conftest.py); these
names are re-exported for the tests that import them from here."""

from tests.cluster import HACKERS, SAMPLES, SEMICOMPLETE, LocalCluster, logmr

__all__ = ["HACKERS", "SAMPLES", "SEMICOMPLETE", "LocalCluster", "logmr"]
