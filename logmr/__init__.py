"""logmr: distributed map/reduce for web access logs, on Gearman."""

__version__ = "0.1.0"
