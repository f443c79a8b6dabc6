"""The single-instance lock on the state directory: one daemon per ``daemon.state_dir``.

Two daemons on one state directory would race on the same ``.part`` files and ingest every
record twice. ``heliowatch run`` takes an exclusive :func:`fcntl.flock` on
``<state_dir>/.lock`` before anything else and holds it for its life; the file holds the
holder's pid, so a second daemon ends at once with one line naming it. The kernel drops the
lock when the process ends, however it ends (a SIGKILL included), so there is never a stale
lock to clean up. Read-only commands (``heliowatch status``) do not take it.

Taking the lock is also the start-up check that the state directory is writable: a
read-only or foreign-owned directory ends the run with one line before any work is done.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

from heliowatch.daemon.errors import ConfigError
from heliowatch.models.core.errors import UsageError

__all__ = ["StateDirLock", "StateDirLocked"]


class StateDirLocked(UsageError):
    """Another heliowatch process holds the state directory's lock.

    Parameters
    ----------
    msg : str
        The one line naming the state directory and the holder's pid.
    pid : int or None
        The holder's pid, when its lock file says.
    """

    def __init__(self, msg: str, pid: int | None) -> None:
        self.pid = pid
        super().__init__(msg)


class StateDirLock:
    """An exclusive lock on ``<state_dir>/.lock``, held from :meth:`acquire` to :meth:`release`.

    Parameters
    ----------
    state_dir : pathlib.Path
        The daemon's state directory; created when missing.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / ".lock"
        self._fd: int | None = None

    def acquire(self) -> StateDirLock:
        """Take the lock or fail at once (never wait).

        Returns
        -------
        StateDirLock
            ``self``, held.

        Raises
        ------
        StateDirLocked
            When another process holds it.
        ConfigError
            When the state directory cannot be created or written (read-only, permissions, full).
        """
        where = self.state_dir.resolve()
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            # O_CLOEXEC (Python's default): a child process never inherits, and so never keeps, the lock.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise self._unwritable(where, e) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            holder = f"pid {pid}" if pid is not None else "another process"
            msg = (
                f"state directory {where} is in use by another heliowatch ({holder}): "
                "stop it first, or give this one its own daemon.state_dir"
            )
            raise StateDirLocked(msg, pid) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._probe()
        except OSError as e:
            os.close(fd)
            raise self._unwritable(where, e) from e
        self._fd = fd
        return self

    def _probe(self) -> None:
        """Create and remove a file: the lock file may be writable in a directory that is not."""
        probe = self.state_dir / f".write-probe.{os.getpid()}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()

    @staticmethod
    def _unwritable(where: Path, e: OSError) -> ConfigError:
        msg = (
            f"state directory {where} is not writable ({e.strerror or e}): heliowatch keeps its state, "
            "frames and outputs there; make it writable by this user or point daemon.state_dir elsewhere"
        )
        return ConfigError(msg, ("daemon", "state_dir"))

    def release(self) -> None:
        """Drop the lock (the pid stays in the file; it means nothing without the lock)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateDirLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
