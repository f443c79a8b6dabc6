"""Secrets kept out of every output: passwords in URLs masked before anything is written or printed.

The database URLs (``state.url``, ``store.url``) may carry a password
(``postgresql://heliowatch:PASSWORD@db/heliowatch``); the run summary, ``heliowatch status``, the
log lines and the one-line errors all pass what they show through :func:`mask_url` or
:func:`mask_text`, so the password never reaches a file, the journal or a terminal. The other
secrets (the JSOC e-mail, the SMTP password, the webhook URL) are
:class:`~heliowatch.daemon.config.Secret` values that are never put in an output at all.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["MASK", "mask_text", "mask_url"]

#: What a password is replaced with.
MASK = "***"

# scheme://user:password@ inside any text; the password runs to the last '@' before the host
# part ends, so a password holding '@' or ':' is masked whole.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]*:)(?P<pw>[^\s/]*)@")


def mask_url(url: str) -> str:
    """``url`` with the password of its user part replaced by ``***`` (unchanged when it has none).

    >>> mask_url("postgresql+psycopg://hw:s3cret@db.example:5432/heliowatch")
    'postgresql+psycopg://hw:***@db.example:5432/heliowatch'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_text(url)
    if parts.password is None:
        return mask_text(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}"))


def mask_text(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` in it replaced by ``***``."""
    if "://" not in text:
        return text
    return _USERINFO.sub(lambda m: f"{m['head']}{MASK}@", text)
