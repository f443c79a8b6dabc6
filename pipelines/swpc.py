"""HTTP access to NOAA SWPC's feeds (the one module that speaks to SWPC): the SRS text and the
GOES X-ray event JSON.

Reads are bounded (``max_bytes``) because the size of what comes back is untrusted, and every
failure is one :class:`FeedError` with the reason, so callers keep what they already have.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request

from heliowatch.pipelines.errors import SourceUnavailable

__all__ = ["FeedError", "fetch"]


class FeedError(SourceUnavailable):
    """An SWPC feed could not be fetched (unreachable, an HTTP error, or too large)."""


def fetch(url: str, *, timeout_s: float = 30.0, max_bytes: int = 5_000_000) -> bytes:
    """GET ``url`` and return its body.

    Raises
    ------
    FeedError
        When the server is unreachable, answers with an error, or sends more than ``max_bytes``.
    """
    if not url.startswith(("http://", "https://")):
        msg = f"{url}: not an http(s) URL"
        raise FeedError(msg)
    req = urllib.request.Request(url, headers={"User-Agent": "heliowatch"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            body: bytes = resp.read(max_bytes + 1)
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        msg = f"{url}: {type(e).__name__}: {e}"
        raise FeedError(msg) from e
    if len(body) > max_bytes:
        msg = f"{url}: larger than {max_bytes} bytes"
        raise FeedError(msg)
    return body
