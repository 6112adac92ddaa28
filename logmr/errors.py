"""The one exception tree of logmr.

Every error a user can meet is a :class:`LogmrError`, or the transport's own
:class:`logmr.gearman.errors.GearmanError`; the CLI prints either's message as one line
on stderr and exits 2. The message says what went wrong and what to do next.
"""


class LogmrError(Exception):
    """Root of every error logmr raises on purpose."""


class ConfigError(LogmrError):
    """Bad option, bad value, bad configuration."""







class StoreError(LogmrError):
    """A storage node could not store or read its data."""


class WireError(LogmrError):
    """A payload on the wire could not be decoded (wrong schema version, bad msgpack)."""


class DiskUnavailable(StoreError):
    """A node's disk cannot take a batch now (full, failing, read-only): the batch goes back
    to the queue, never fails."""
