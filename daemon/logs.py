"""structlog set-up: JSON lines on stderr, third-party stdlib loggers through the same renderer.

Logs go to stderr and what a command produces (the run summary, JSON documents) to stdout,
so ``heliowatch run --once > summary.txt`` or ``| jq`` sees only the output; systemd sends
both streams to the journal. drms calls ``logging.basicConfig`` at import time (stack-notes
A1.1), which would print a second, non-JSON copy of its lines; :func:`configure_logging`
replaces the root handlers, and Python warnings are logged through the same renderer rather
than printed. Tracebacks are rendered without local variables so e-mail addresses and
passwords held in locals cannot leak into the journal, and every rendered line (a traceback's
text included) has the passwords of the URLs in it masked (:func:`heliowatch.daemon.secrets.mask_text`).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from heliowatch.daemon.secrets import mask_text

__all__ = ["QUIET_LOGGERS", "configure_logging"]

#: Third-party loggers held at WARNING unless the configured level is DEBUG: their INFO lines
#: are per-file or per-export noise in a daemon (onnx_ir and onnxscript log a dozen lines per
#: ONNX export; drms one per request).
QUIET_LOGGERS = (
    "distributed",
    "drms",
    "fsspec",
    "matplotlib",
    "numexpr",
    "onnx_ir",
    "onnxscript",
    "PIL",
    "torch",
    "urllib3",
)

_JOURNALD_PRIORITY = {"critical": 2, "error": 3, "warning": 4, "info": 6, "debug": 7}


class _MaskingFormatter(structlog.stdlib.ProcessorFormatter):
    """The rendered line with URL passwords masked: whatever logged it (a third-party library, an
    exception's message), the password of a database URL never reaches the journal."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_text(super().format(record))


class _PriorityFormatter(_MaskingFormatter):
    """Prefix each rendered line with ``<N>`` so journald stores its syslog priority."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return f"<{_JOURNALD_PRIORITY.get(record.levelname.lower(), 6)}>{line}"


def configure_logging(
    level: str = "info", fmt: str = "json", *, journald_prefix: bool = False, stream: TextIO | None = None
) -> None:
    """Route structlog, stdlib logging and Python warnings to one renderer on ``stream`` (stderr by default).

    Parameters
    ----------
    level : str
        Minimum level name.
    fmt : {"json", "console"}
        JSON lines for machines, or a coloured console renderer for people.
    journald_prefix : bool
        Prefix lines with ``<N>`` (sd-daemon(3)) so ``journalctl -p`` works.
    stream : file-like, optional
        Where to write (tests pass a buffer).
    """
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        exc = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        final = [structlog.stdlib.ProcessorFormatter.remove_processors_meta, exc, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        final = [structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter_cls = _PriorityFormatter if journald_prefix else _MaskingFormatter
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter_cls(foreign_pre_chain=shared, processors=final))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # warnings.warn() would otherwise print two non-JSON lines on stderr, between the JSON ones.
    logging.captureWarnings(True)
    quiet = logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
    # APScheduler warns of each skipped (overlapping or missed) run, which the daemon logs itself
    # as job_not_run: only its errors (a job that raised) are kept.
    logging.getLogger("apscheduler").setLevel(logging.NOTSET if root.level <= logging.DEBUG else logging.ERROR)
