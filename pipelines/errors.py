"""Errors of the pipelines layer: data sources that fail and data that is refused.

Data problems that should not stop the daemon (a corrupt file, a bad QUALITY word) are
raised as :class:`DataRejected` and turned into counted, logged rejects by the ingest loop;
an unreachable JSOC is :class:`SourceUnavailable`, retried by the next poll.
"""

from __future__ import annotations

from heliowatch.models.core.errors import HeliowatchError

__all__ = ["DataRejected", "DeliveryError", "SourceUnavailable"]


class SourceUnavailable(HeliowatchError):
    """The JSOC (or the stand-in, or an SWPC feed) could not be reached or answered with an error."""


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


class DeliveryError(SourceUnavailable):
    """An alert could not be delivered on one channel (mail, webhook).

    Parameters
    ----------
    msg : str
        Human-readable reason; it reaches the log and the outbox, so it never holds a secret.
    permanent : bool
        The receiver refused the message for good (an HTTP 4xx other than 408/429): retrying
        cannot help, so the outbox stops trying. Otherwise it stays pending and is retried.
    """

    def __init__(self, msg: str, *, permanent: bool = False) -> None:
        self.permanent = permanent
        super().__init__(msg)
