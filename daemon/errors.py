"""Exception hierarchy shared by every heliowatch subpackage.

Data problems that should not stop the daemon (a corrupt file, a bad QUALITY word) are
raised as :class:`DataRejected` and turned into counted, logged events by the ingest loop;
misuse and bad configuration raise and stop the command with one line on stderr.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataRejected",
    "HeliowatchError",
    "ModelError",
    "SourceUnavailable",
    "UsageError",
]


class HeliowatchError(Exception):
    """Base class: the command line prints ``str(exc)`` on one line and exits non-zero."""


class ConfigError(HeliowatchError):
    """A configuration value is unknown, of the wrong type or impossible.

    Parameters
    ----------
    msg : str
        What is wrong and how to fix it.
    path : tuple of str
        The key path, e.g. ``("alerts", "smtp", "port")``.
    """

    def __init__(self, msg: str, path: tuple[str, ...] = ()) -> None:
        self.path = path
        self.msg = msg
        where = ".".join(path)
        super().__init__(f"{where}: {msg}" if where else msg)


class SourceUnavailable(HeliowatchError):
    """The JSOC (or the stand-in) could not be reached or answered with an error."""


class DataRejected(HeliowatchError):
    """A record or file failed an integrity or quality check and was not ingested.

    Parameters
    ----------
    msg : str
        Human-readable reason.
    reason : str
        A short, bounded code used as a metric label (``truncated``, ``checksum``, ...).
    """

    def __init__(self, msg: str, reason: str = "invalid") -> None:
        self.reason = reason
        super().__init__(msg)


class ModelError(HeliowatchError):
    """A model, its weights, its card or an exported artefact is missing or inconsistent."""


class UsageError(HeliowatchError):
    """Bad command-line input (a file that is not what the command needs, a bad option)."""
