"""A parser for the DRMS record-set syntax that heliowatch and drms send.

Supported (http://jsoc.stanford.edu/jsocwiki/DrmsNames):

- ``series[pk1][pk2]{seg1,seg2}`` with primekeys in bracket order; ``[]`` means all values;
- a single value (``[377]``, ``[2011.02.15_02:00:00_TAI]``, ``[2019-11-08T06:00:10Z]``);
- ranges ``[a-b]`` (times in JSOC ``YYYY.MM.DD_hh:mm:ss_TAI`` form), ``[t/1h]`` durations
  (``s``, ``m``, ``h``, ``d``), an optional ``@12m`` cadence, comma lists of values;
- ``[$]`` (the last value of that key among the records selected so far) and ``[^]`` (first);
- SQL-like filters ``[? QUALITY=0 ?]``, ``[? WAVELNTH=304 AND QUALITY<1024 ?]``.

Anything else raises :class:`RecordSetError`, which the server turns into JSOC's
``{"status": 1, "error": ...}``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Filter", "KeySelector", "RecordSet", "RecordSetError", "parse_duration", "parse_recordset"]


class RecordSetError(ValueError):
    """The record-set string cannot be parsed."""


_DUR_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Parse ``12m``, ``1h``, ``720s``, ``1.5d`` into seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smhd]?)\s*", text)
    if not m:
        msg = f"bad duration {text!r}"
        raise RecordSetError(msg)
    return float(m.group(1)) * _DUR_UNITS[m.group(2) or "s"]


@dataclass(frozen=True)
class KeySelector:
    """What one ``[...]`` primekey bracket selects.

    ``kind`` is ``all``, ``last``, ``first``, ``values`` (a list), ``range`` (inclusive
    ``lo``..``hi``). Time values are kept as strings; the archive converts them.
    """

    kind: str
    values: tuple[str, ...] = ()
    lo: str | None = None
    hi: str | None = None
    duration_s: float | None = None
    cadence_s: float | None = None


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "!=": operator.ne,
    "<>": operator.ne,
    "=": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
}


@dataclass(frozen=True)
class Filter:
    """One ``KEY op VALUE`` clause of a ``[? ... ?]`` filter; clauses are ANDed."""

    key: str
    op: str
    value: str

    def matches(self, actual: Any) -> bool:
        """Apply the clause to a keyword value (numbers compare as numbers)."""
        if actual is None:
            return False
        v: Any = self.value.strip("'\"")
        a: Any = actual
        if isinstance(actual, int | float):
            try:
                v = int(v, 16) if v.lower().startswith("0x") else float(v)
            except ValueError:
                return False
        else:
            a = str(actual)
        return bool(_OPS[self.op](a, v))


@dataclass
class RecordSet:
    """A parsed record-set specification."""

    series: str
    keys: list[KeySelector] = field(default_factory=list)
    filters: list[Filter] = field(default_factory=list)
    segments: list[str] | None = None


_TIME_RANGE = re.compile(r"^(\d{4}\.\d\d\.\d\d[_\d:.]*(?:_TAI|_UTC|_UT|Z)?)-(\d{4}\.\d\d\.\d\d[_\d:.]*(?:_TAI|_UTC|_UT|Z)?)$")


def _parse_key(text: str) -> KeySelector:
    t = text.strip()
    if t == "":
        return KeySelector("all")
    if t in ("$", "#$"):
        return KeySelector("last")
    if t in ("^", "#^"):
        return KeySelector("first")
    cadence = None
    if "@" in t:
        t, cad = t.split("@", 1)
        cadence = parse_duration(cad)
    if "/" in t:
        start, dur = t.split("/", 1)
        return KeySelector("range", lo=start.strip(), duration_s=parse_duration(dur), cadence_s=cadence)
    m = _TIME_RANGE.match(t)
    if m:
        return KeySelector("range", lo=m.group(1), hi=m.group(2), cadence_s=cadence)
    m2 = re.fullmatch(r"(-?\d+)\s*-\s*(-?\d+)", t)
    if m2:
        return KeySelector("range", lo=m2.group(1), hi=m2.group(2), cadence_s=cadence)
    return KeySelector("values", values=tuple(v.strip() for v in t.split(",") if v.strip()), cadence_s=cadence)


_FILTER_CLAUSE = re.compile(r"^\s*([A-Za-z_][\w]*)\s*(<=|>=|!=|<>|=|<|>)\s*(.+?)\s*$")


def _parse_filter(text: str) -> list[Filter]:
    out = []
    for clause in re.split(r"\s+(?:AND|and)\s+", text.strip()):
        m = _FILTER_CLAUSE.match(clause)
        if not m:
            msg = f"unsupported filter clause {clause!r}"
            raise RecordSetError(msg)
        out.append(Filter(m.group(1).upper(), m.group(2), m.group(3)))
    return out


def parse_recordset(ds: str) -> RecordSet:
    """Parse a record-set string.

    Parameters
    ----------
    ds : str
        E.g. ``hmi.sharp_cea_720s_nrt[][$]{Br}`` or ``aia.lev1_nrt2[2019.11.08_06:00_TAI/1h][? WAVELNTH=304 ?]``.

    Returns
    -------
    RecordSet

    Raises
    ------
    RecordSetError
        For syntax the stand-in does not implement.
    """
    s = ds.strip()
    m = re.match(r"^([A-Za-z][\w]*\.[\w]+)", s)
    if not m:
        msg = f"bad series name in {ds!r}"
        raise RecordSetError(msg)
    rs = RecordSet(series=m.group(1))
    pos = m.end()
    while pos < len(s):
        ch = s[pos]
        if ch.isspace():
            pos += 1
            continue
        if s.startswith("[?", pos):
            end = s.find("?]", pos + 2)
            if end < 0:
                msg = f"unterminated filter in {ds!r}"
                raise RecordSetError(msg)
            rs.filters += _parse_filter(s[pos + 2 : end])
            pos = end + 2
        elif ch == "[":
            end = s.find("]", pos)
            if end < 0:
                msg = f"unterminated bracket in {ds!r}"
                raise RecordSetError(msg)
            rs.keys.append(_parse_key(s[pos + 1 : end]))
            pos = end + 1
        elif ch == "{":
            end = s.find("}", pos)
            if end < 0:
                msg = f"unterminated segment list in {ds!r}"
                raise RecordSetError(msg)
            rs.segments = [x for x in re.split(r"[\s,]+", s[pos + 1 : end]) if x]
            pos = end + 1
        else:
            msg = f"unexpected {ch!r} at position {pos} in {ds!r}"
            raise RecordSetError(msg)
    return rs
