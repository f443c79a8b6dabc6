"""The exception base of heliowatch and the errors every layer may raise.

The command line prints ``str(exc)`` of any :class:`HeliowatchError` on one line and exits
non-zero; it never shows a traceback for one. Each layer adds its own specific errors on top
(``heliowatch.pipelines.errors``: data sources and rejected data; ``heliowatch.daemon.errors``:
configuration).
"""

from __future__ import annotations

__all__ = ["HeliowatchError", "ModelError", "UsageError"]


class HeliowatchError(Exception):
    """Base class: the command line prints ``str(exc)`` on one line and exits non-zero."""


class UsageError(HeliowatchError):
    """Bad input from the user: a file that is not what the command needs, a bad option."""


class ModelError(HeliowatchError):
    """A model, its weights, its card or an exported artefact is missing or inconsistent."""
