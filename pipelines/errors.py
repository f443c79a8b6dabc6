"""Errors of the pipelines layer: data sources that fail and data that is refused.

Data problems that should not stop the daemon (a corrupt file, a bad QUALITY word) are
raised as :class:`DataRejected` and turned into counted, logged rejects by the ingest loop;
an unreachable JSOC is :class:`SourceUnavailable`, retried by the next poll. A write on this
machine that fails for want of space or permission (a full disk, a read-only state directory) is
:class:`LocalIOError`: not the JSOC's fault, so never counted as a download retry or a reject.
"""

from __future__ import annotations

import errno
import sqlite3

from heliowatch.models.core.errors import HeliowatchError

__all__ = ["DataRejected", "DeliveryError", "LocalIOError", "SourceUnavailable", "local_io_error"]


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


class LocalIOError(HeliowatchError):
    """A local write failed for want of space or permission (disk full, read-only, permissions).

    The daemon logs it on one line, counts it (``heliowatch_local_io_errors_total{op}``) and
    leaves the record un-ingested or un-processed, so it is fetched or offered again once the
    disk has room.

    Parameters
    ----------
    msg : str
        What failed, where, and what to do.
    op : str
        A short, bounded code used as a metric label: ``frames`` (downloads into the frame
        store), ``state`` (the state database), ``outputs`` (product files and records).
    """

    def __init__(self, msg: str, op: str) -> None:
        self.op = op
        super().__init__(msg)


#: errno values that mean "this machine cannot write here", not "the JSOC failed".
_LOCAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
#: SQLite primary result codes with the same meaning (the state database is a local file).
_SQLITE_LOCAL = frozenset({3, 8, 10, 13, 14})  # PERM, READONLY, IOERR, FULL, CANTOPEN


def local_io_error(exc: BaseException, op: str, path: object = None) -> LocalIOError | None:
    """``exc`` as a :class:`LocalIOError` when it (or what caused it) is a local write failure.

    Parameters
    ----------
    exc : BaseException
        What was raised; its cause chain and a wrapped DB-API error (``.orig``) are looked at too.
    op : str
        The label for an OS error (a SQLite error is always ``state``).
    path : path-like, optional
        The file being written, named in the message when the OS error does not say.

    Returns
    -------
    LocalIOError or None
        None when ``exc`` is something else (a network error, a bug), which the caller handles as before.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen or len(seen) > 16:
            continue
        seen.add(id(e))
        if isinstance(e, LocalIOError):
            return e
        if isinstance(e, OSError) and e.errno in _LOCAL_ERRNOS:
            name = e.filename or path
            where = f" {name}" if name else ""
            msg = f"cannot write{where}: {e.strerror or e} (free space or fix its permissions)"
            return LocalIOError(msg, op)
        code = getattr(e, "sqlite_errorcode", None)
        if isinstance(e, sqlite3.Error) and isinstance(code, int) and code & 0xFF in _SQLITE_LOCAL:
            msg = f"cannot write the state database: {e} (free space or fix its permissions)"
            return LocalIOError(msg, "state")
        orig = getattr(e, "orig", None)
        todo += [e.__cause__, e.__context__, orig if isinstance(orig, BaseException) else None]
    return None
