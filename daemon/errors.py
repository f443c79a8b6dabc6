"""Errors of the daemon layer: the configuration.

The error base and the errors every layer shares live in :mod:`heliowatch.models.core.errors`;
data-source errors in :mod:`heliowatch.pipelines.errors`.
"""

from __future__ import annotations

import re

from heliowatch.models.core.errors import HeliowatchError

__all__ = ["ConfigError"]


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
        where = ".".join(map(_key, path))
        super().__init__(f"{where}: {msg}" if where else msg)


def _key(part: str) -> str:
    """A key as the message shows it: plain names as they are, odd ones (newlines, dots) quoted, short."""
    if re.fullmatch(r"[\w-]+(\[\d+\])?", part):
        return part
    text = repr(part)
    return text if len(text) <= 40 else f"{text[:37]}..."
