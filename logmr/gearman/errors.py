"""The transport's own exceptions: what went wrong talking to a job server.

They say nothing of what the jobs mean. An application wraps or reports them as it sees
fit (logmr's command line prints each as one line, as it does its own errors).
"""


class GearmanError(Exception):
    """Root of every error of this package."""


class AddressError(GearmanError, ValueError):
    """A job server address that cannot be read, or none at all."""


class ServerUnavailable(GearmanError):
    """No job server could be reached (or the one asked for could not)."""


class GearmanTimeout(GearmanError):
    """A job server did not answer within the time allowed."""


class ProtocolError(GearmanError):
    """The peer sent bytes that are not the Gearman protocol we expect."""


class JobFailed(GearmanError):
    """A foreground job ended with WORK_FAIL or WORK_EXCEPTION."""
