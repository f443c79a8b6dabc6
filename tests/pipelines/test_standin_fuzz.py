"""The stand-in under hostile input: every request gets an HTTP answer, an error the JSOC way.

Hypothesis builds query strings for every CGI the stand-in serves (known parameters with hostile
values, unknown parameters, raw bytes, broken percent-encoding) and download paths: each
response is HTTP with JSON that is either a valid answer (``status`` 0, or a pending export) or a
JSOC-style error (``status`` not 0 with an ``error``/``msg``), never a dropped connection, and
nothing is printed on the server's stderr (no traceback). The series filter is matched by the
stand-in itself, never compiled as a regular expression: a catastrophic-backtracking pattern
answers at once, and the subset it does support agrees with :mod:`re` on generated patterns.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import time
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heliowatch.pipelines.standin.archive import Archive, demo_archive_path
from heliowatch.pipelines.standin.series_filter import FilterError, compile_filter
from heliowatch.pipelines.standin.server import StandinServer

CGIS = ("checkAddress.sh", "show_series", "jsoc_info", "jsoc_fetch")
PARAMS = (
    "op", "ds", "n", "key", "seg", "link", "R", "filter", "address", "requestid", "method", "protocol",
    "process=n", "filenamefmt", "requester", "notify", "format",
)  # fmt: skip
OPS = ("rs_list", "rs_summary", "series_struct", "exp_request", "exp_status", "bogus", "")
SERIES = ("hmi.M_720s_nrt", "hmi.sharp_cea_720s_nrt", "nosuch.series", "")
HOSTILE = (
    "(", ")", "[", "*", "+?", "(a*)*$", "\\", "%", "%zz", "%00", "\x00", "\ud7ff", "é", "1e400", "-0", "nan",
    "9" * 40, "-9" * 20, " ", "|", "||", "{segment}", "{", "}", "$", "^", "[?", "?]", "..", "/", "a" * 300,
)  # fmt: skip
#: Enough to meet each branch many times; CI keeps the run to a few seconds.
EXAMPLES = 400


BRACKETS = (
    "[]", "[$]", "[^]", "[377]", "[2011.02.15_02:00:00_TAI]", "[? QUALITY=0 ?]", "[2024.05.10_00:00:00_TAI/1h@12m]",
    "{magnetogram}", "{", "[", "[? X ?]", "[-]", "[377,abc]", "[1-]",
)  # fmt: skip


def _value() -> st.SearchStrategy[str]:
    brackets = st.lists(st.sampled_from(BRACKETS), max_size=4).map("".join)
    records = st.tuples(st.sampled_from(SERIES), brackets).map("".join)
    return st.one_of(
        st.sampled_from(HOSTILE),
        st.sampled_from(OPS),
        records,
        st.integers(-(10**20), 10**20).map(str),
        st.text(max_size=40),
        st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=5).map("".join),
    )


@st.composite
def query(draw: st.DrawFn) -> str:
    """A query string: known and unknown parameters, percent-encoded or raw, sometimes garbled."""
    items = draw(st.lists(st.tuples(st.one_of(st.sampled_from(PARAMS), st.text(max_size=8)), _value()), max_size=6))
    parts = []
    for k, v in items:
        if draw(st.booleans()):
            parts.append(f"{quote(k, safe='')}={quote(v, safe='')}")
        else:  # raw: what a careless client sends (broken escapes and all)
            parts.append(_raw(f"{k}={v}"))
    return "&".join(parts)


def _raw(text: str) -> str:
    """``text`` as it can stand in a request line: printable ASCII kept as is, the rest %-escaped."""
    return "".join(c if 33 <= ord(c) < 127 and c != "#" else f"%{ord(c):02X}" for c in text.encode().decode("latin1"))


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("fuzz-archive")
    shutil.copytree(demo_archive_path() / "sharp", root / "sharp")
    shutil.copy(demo_archive_path() / "standin.toml", root / "standin.toml")
    srv = StandinServer(Archive(root), export_delay_s=0.0).start()
    yield srv
    srv.stop()


def _get(url: str, target: str) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()  # a dropped connection raises here (RemoteDisconnected)
        return resp.status, resp.read()
    finally:
        conn.close()


def _check_answer(status: int, body: bytes, target: str) -> None:
    assert status in (200, 400, 404, 414, 503), (status, target)
    if status != 200:
        return
    doc = json.loads(body.decode("latin1"))
    assert isinstance(doc, dict) and "status" in doc, (target, doc)
    if doc["status"] not in (0, 1, 2, 6) or doc.get("error"):
        # An error: JSOC's shape (a non-zero status and a message saying what was wrong).
        assert doc["status"] != 0, (target, doc)
        assert doc.get("error") or doc.get("msg"), (target, doc)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cgi=st.sampled_from(CGIS), q=query())
def test_every_cgi_request_gets_an_http_answer(standin, capfd: pytest.CaptureFixture[str], cgi: str, q: str) -> None:
    target = f"/cgi-bin/ajax/{cgi}?{q}"
    status, body = _get(standin.url, target)
    _check_answer(status, body, target)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception" not in err, err


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.one_of(
        st.lists(st.sampled_from(["export", "SUM1", "D1", "S00000", "JSOC_1", "..", "", "x.fits", "%2e%2e"]), max_size=5).map(
            lambda p: "/" + "/".join(p)
        ),
        st.text(max_size=30).map(lambda t: "/" + quote(t)),
    )
)
def test_every_download_path_gets_an_http_answer(standin, capfd: pytest.CaptureFixture[str], path: str) -> None:
    status, _ = _get(standin.url, path)
    assert status in (200, 400, 404)
    assert "Traceback" not in capfd.readouterr().err


def test_the_issues_requests_answer_as_the_jsoc_does(standin) -> None:
    """The requests that used to drop the connection (a raw-regex filter, a non-integer n)."""
    for target in (
        "/cgi-bin/ajax/show_series?filter=(",
        "/cgi-bin/ajax/show_series?filter=" + quote("[a-"),
        "/cgi-bin/ajax/jsoc_info?op=rs_list&ds=hmi.sharp_cea_720s_nrt[]&n=abc&key=T_REC",
        "/cgi-bin/ajax/jsoc_info?op=rs_summary&ds=hmi.sharp_cea_720s_nrt[]&n=1.5",
        "/cgi-bin/ajax/jsoc_fetch?op=exp_request&ds=hmi.sharp_cea_720s_nrt[]&process%3Dn=x%7Cim_patch&method=url",
        "/export/",
    ):
        status, body = _get(standin.url, target)
        assert status in (200, 404), target
        if status == 200:
            doc = json.loads(body)
            assert doc["status"] != 0 and doc["error"], (target, doc)


def test_catastrophic_filter_answers_at_once(standin) -> None:
    # (a+)+$ against a long run of a's is the classic exponential backtracking case for re.
    t0 = time.monotonic()
    status, body = _get(standin.url, "/cgi-bin/ajax/show_series?filter=" + quote("(a+)+$"))
    assert status == 200 and json.loads(body)["status"] == 1
    pattern = "a*" * 40 + "b"  # supported: still linear in the name, no backtracking
    status, body = _get(standin.url, "/cgi-bin/ajax/show_series?filter=" + quote(pattern))
    assert status == 200 and json.loads(body) == {"status": 0, "n": 0, "names": []}
    assert time.monotonic() - t0 < 2.0


def test_series_filter_finds_series_like_drms_expects(standin) -> None:
    import drms

    from heliowatch.pipelines.jsoc import make_server_config

    c = drms.Client(make_server_config(standin.url))
    assert c.series(r"hmi\.sharp_cea_720s_nrt$") == ["hmi.sharp_cea_720s_nrt"]
    assert c.series(r"^HMI\.SHARP") == ["hmi.sharp_cea_720s", "hmi.sharp_cea_720s_nrt"]  # case-insensitive
    assert c.series(r"sharp.*nrt") == ["hmi.sharp_cea_720s_nrt"]
    assert c.series(r"720s?_nrt") == ["hmi.sharp_cea_720s_nrt"]
    assert c.series(r"\d+s_nrt") == ["hmi.sharp_cea_720s_nrt"]


# The subset the stand-in matches, generated, and checked against Python's re on names: the
# pattern comes from the test, never from a client.
_ATOM = st.sampled_from(["a", "b", "_", ".", "\\.", "\\d", "\\w", "1"])
_PATTERN = st.tuples(
    st.booleans(),
    st.lists(st.tuples(_ATOM, st.sampled_from(["", "", "*", "+", "?"])), max_size=6),
    st.booleans(),
).map(lambda t: ("^" if t[0] else "") + "".join(a + q for a, q in t[1]) + ("$" if t[2] else ""))


@settings(max_examples=300, deadline=None)
@given(pattern=_PATTERN, name=st.text(alphabet="ab_.1A9", max_size=10))
def test_series_filter_agrees_with_re_on_its_subset(pattern: str, name: str) -> None:
    assert compile_filter(pattern)(name) == bool(re.search(pattern, name, re.IGNORECASE | re.ASCII))


@pytest.mark.parametrize("pattern", ["(", "a|b", "[ab]", "a{2}", "*a", "a**", "\\", "\\q", "x" * 300])
def test_series_filter_refuses_what_it_cannot_match(pattern: str) -> None:
    with pytest.raises(FilterError):
        compile_filter(pattern)


def test_fuzz_archive_is_real(standin) -> None:
    """The fuzzed stand-in serves real records (so valid answers are exercised too)."""
    status, body = _get(standin.url, "/cgi-bin/ajax/jsoc_info?op=rs_summary&ds=hmi.sharp_cea_720s_nrt%5B%5D")
    assert status == 200 and json.loads(body)["count"] > 0
