"""Alerts to a webhook (the one module that POSTs alerts over HTTP).

One JSON POST per alert: heliowatch's own object for a generic receiver, or ``{"text": ...}``
for the incoming webhooks of Slack, Mattermost and Matrix (hookshot), which all read ``text``.
Each POST carries an ``Idempotency-Key`` header, the alert's stable id (its Message-ID without
the brackets), so a receiver that honours it drops the one duplicate the outbox can send
after a crash between the receiver's answer and our commit.

A 2xx is a delivery. Any other 4xx but 408 and 429, and a redirect (a POST that urllib would
replay as a GET), mean the URL or the token is wrong: :class:`DeliveryError` with
``permanent=True``, never retried. A 5xx, 408, 429, a timeout or a refused connection is a
transient :class:`DeliveryError`, retried with the outbox's backoff.

The URL may carry a token (Slack's and Mattermost's do), and an extra header may carry a
credential: neither ever reaches an error message, a log line or a ``repr``; only the host does.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from heliowatch.models.core import jsonio
from heliowatch.pipelines.errors import DeliveryError

__all__ = ["FORMATS", "Notice", "WebhookTransport", "url_host"]

#: Body formats: heliowatch's own object, or Slack-style ``{"text": ...}``.
FORMATS = ("generic", "slack")

# 4xx worth retrying: Request Timeout and Too Many Requests say "later", not "never".
_RETRY_4XX = frozenset({408, 429})
# Mattermost cuts a post at 16383 characters (Slack at 40000); a long digest is cut here instead.
_MAX_TEXT = 15000
# What the receiver answers is read (so the connection closes cleanly) but not trusted in size.
_MAX_REPLY = 65536


def url_host(url: str) -> str:
    """The host (and port) of ``url``: what logs and errors may show of a URL holding a token.

    Raises
    ------
    ValueError
        When ``url`` is not an http(s) URL with a host (the message never repeats the URL).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        msg = "the webhook URL must be http:// or https:// with a host"
        raise ValueError(msg)
    return f"{parts.hostname}:{port}" if port else parts.hostname


@dataclass(frozen=True)
class Notice:
    """One alert as a webhook carries it.

    ``id`` is stable across retries and restarts (the ``Idempotency-Key``); ``attachments``
    are file names only, since a webhook carries no files.
    """

    id: str
    kind: str
    subject: str
    text: str
    region: str | None = None
    created_utc: str = ""
    attachments: tuple[str, ...] = ()

    def body(self, fmt: str) -> bytes:
        """The JSON body in format ``fmt`` (one of :data:`FORMATS`), strict JSON, UTF-8."""
        if fmt == "slack":
            text = f"{self.subject}\n\n{self.text}"
            if len(text) > _MAX_TEXT:
                text = text[: _MAX_TEXT - 20] + "\n... (truncated)"
            doc: dict[str, Any] = {"text": text}
        elif fmt == "generic":
            doc = {
                "schema_version": jsonio.SCHEMA_VERSION,
                "source": "heliowatch",
                "id": self.id,
                "kind": self.kind,
                "subject": self.subject,
                "text": self.text,
                "region": self.region,
                "created_utc": self.created_utc,
                "attachments": list(self.attachments),
            }
        else:
            msg = f"unknown webhook format {fmt!r}; known: {', '.join(FORMATS)}"
            raise ValueError(msg)
        return jsonio.dumps(doc, ensure_ascii=False).encode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: urllib would replay a redirected POST as a bodiless GET."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        """Follow no redirect (urllib then raises the 3xx as an HTTPError)."""
        return None


class WebhookTransport:
    """POST alerts to one webhook URL.

    Parameters
    ----------
    url : str
        The receiver's http(s) URL (it may hold a token: it is kept out of every message).
    format : str
        ``generic`` or ``slack`` (also Mattermost and Matrix hookshot).
    timeout_s : float
        Connect and read timeout of one POST.
    headers : mapping or None
        Extra headers, e.g. ``{"Authorization": "Bearer ..."}`` (their values are secret too).

    Raises
    ------
    ValueError
        For a URL that is not http(s) or an unknown format.
    """

    kind = "webhook"

    def __init__(
        self, url: str, *, format: str = "generic", timeout_s: float = 10.0, headers: Mapping[str, str] | None = None
    ) -> None:
        self.host = url_host(url)
        if format not in FORMATS:
            msg = f"unknown webhook format {format!r}; known: {', '.join(FORMATS)}"
            raise ValueError(msg)
        self.format = format
        self.timeout_s = timeout_s
        self._url = url
        self._headers = dict(headers or {})
        self._opener = urllib.request.build_opener(_NoRedirect)

    def __repr__(self) -> str:
        return f"WebhookTransport(host={self.host!r}, format={self.format!r})"

    def send(self, notice: Notice) -> None:
        """POST ``notice``; returns on a 2xx.

        Raises
        ------
        DeliveryError
            ``permanent`` for a 3xx or a 4xx other than 408/429; transient otherwise.
        """
        headers = {
            **self._headers,
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "heliowatch",
            "Idempotency-Key": notice.id,
        }
        req = urllib.request.Request(self._url, data=notice.body(self.format), headers=headers, method="POST")
        # `from None` throughout: urllib's exceptions carry the URL (HTTPError.url, ValueError texts).
        try:
            with self._opener.open(req, timeout=self.timeout_s) as resp:
                resp.read(_MAX_REPLY)
        except urllib.error.HTTPError as e:
            code, reason = e.code, e.reason
            e.close()
            msg = f"webhook {self.host}: HTTP {code} {reason}"
            raise DeliveryError(msg, permanent=code < 500 and code not in _RETRY_4XX) from None
        except urllib.error.URLError as e:
            why = e.reason
            msg = f"webhook {self.host}: {type(why).__name__ if isinstance(why, BaseException) else 'URLError'}: {why}"
            raise DeliveryError(msg) from None
        except (OSError, http.client.HTTPException) as e:
            msg = f"webhook {self.host}: {type(e).__name__}: {e}"
            raise DeliveryError(msg) from None
        except ValueError:
            # http.client quotes a bad header value in its message: say which kind of problem only.
            msg = f"webhook {self.host}: the request could not be built (a header value with a line break?)"
            raise DeliveryError(msg, permanent=True) from None
