"""sd_notify(3) over the raw datagram socket, with no dependency.

``sdnotify`` and ``systemd-python`` are sdist-only on PyPI (stack-notes A5); the protocol is
one datagram to ``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace), so a
few lines do, as in Synapse's ``synapse/app/_base.py``. Failures are logged, never raised:
a broken notify socket must not take the daemon down.
"""

from __future__ import annotations

import os
import socket

import structlog

__all__ = ["notify", "watchdog_interval_s"]

log = structlog.get_logger(__name__)


def notify(state: str, *, environ: dict[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1\\nSTATUS=polling"``) to systemd.

    Returns
    -------
    bool
        True if a datagram was sent; False outside systemd or on error.
    """
    env = os.environ if environ is None else environ
    addr = env.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall(state.encode())
    except OSError as e:
        log.warning("sd_notify_failed", error=str(e))
        return False
    return True


def watchdog_interval_s(*, environ: dict[str, str] | None = None) -> float | None:
    """Half of ``WatchdogSec`` when systemd asked this process for keep-alives, else None."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6
