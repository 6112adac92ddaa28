"""The one exception tree of logmr.

Every error a user can meet is a :class:`LogmrError`; the CLI prints its message as one
line on stderr and exits 2. The message says what went wrong and what to do next.
"""


class LogmrError(Exception):
    """Root of every error logmr raises on purpose."""


class ConfigError(LogmrError):
    """Bad option, bad value, bad configuration."""


class GearmanError(LogmrError):
    """Anything that went wrong talking to a Gearman job server."""


class ServerUnavailable(GearmanError):
    """No job server could be reached (or the one asked for could not)."""


class GearmanTimeout(GearmanError):
    """A job server did not answer within the time allowed."""


class ProtocolError(GearmanError):
    """The peer sent bytes that are not the Gearman protocol we expect."""


class JobFailed(GearmanError):
    """A foreground job ended with WORK_FAIL or WORK_EXCEPTION."""


class StoreError(LogmrError):
    """A storage node could not store or read its data."""


class WireError(LogmrError):
    """A payload on the wire could not be decoded (wrong schema version, bad msgpack)."""


class DiskUnavailable(StoreError):
    """A node's disk cannot take a batch now (full, failing, read-only): the batch goes back
    to the queue, never fails."""
