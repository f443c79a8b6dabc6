"""The ``show_series?filter=`` of the stand-in: a small, safe subset of JSOC's regular expressions.

The JSOC filters series names with a regular expression (``drms.Client.series(r"hmi\\.m_720s")``).
Compiling what a client sends with :mod:`re` would let one request hang a server thread
(catastrophic backtracking) or crash the handler, so the stand-in matches a subset itself, in
time linear in the name (a set-of-positions automaton, no backtracking), case-insensitively as
the JSOC does: literal characters, ``\\`` escapes, ``.``, the classes ``\\d`` ``\\w`` ``\\s``, the
quantifiers ``*`` ``+`` ``?`` on one item, ``^`` at the start and ``$`` at the end. Anything else
(groups, alternation, brackets, braces) raises :class:`FilterError`, which the server answers
with a JSOC-style error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MAX_FILTER", "FilterError", "compile_filter"]

#: Longest filter accepted (series names are short; a longer filter is an error, not work).
MAX_FILTER = 256

_CLASSES: dict[str, Callable[[str], bool]] = {
    "d": str.isdigit,
    "w": lambda c: c.isalnum() or c == "_",
    "s": str.isspace,
}


class FilterError(ValueError):
    """The filter uses something the stand-in does not match (or is malformed)."""


@dataclass(frozen=True)
class _Item:
    test: Callable[[str], bool]
    optional: bool = False  # ``?`` or ``*``
    repeat: bool = False  # ``*`` or ``+`` (``+`` is the item followed by the item starred)


def _literal(ch: str) -> Callable[[str], bool]:
    low = ch.lower()
    return lambda c: c == low


def _parse(pattern: str) -> tuple[list[_Item], bool, bool]:
    if len(pattern) > MAX_FILTER:
        msg = f"filter longer than {MAX_FILTER} characters"
        raise FilterError(msg)
    start = pattern.startswith("^")
    end = pattern.endswith("$") and not pattern.endswith("\\$")
    body = pattern[int(start) : len(pattern) - int(end)]
    items: list[_Item] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            if i + 1 >= len(body):
                msg = "filter ends with a lone backslash"
                raise FilterError(msg)
            e = body[i + 1]
            if e.isalnum() and e not in _CLASSES:
                msg = f"unsupported escape \\{e} in filter"
                raise FilterError(msg)
            test = _CLASSES.get(e) or _literal(e)
            i += 2
        elif c == ".":
            test, i = (lambda _: True), i + 1
        elif c in "*+?":
            msg = f"nothing to repeat at position {i} of the filter"
            raise FilterError(msg)
        elif c in "()[]{}|^$":
            msg = f"the stand-in's filters do not support {c!r} (literals, '.', \\d \\w \\s, * + ?, ^ and $ only)"
            raise FilterError(msg)
        else:
            test, i = _literal(c), i + 1
        q = body[i] if i < len(body) else ""
        if q == "*":
            items.append(_Item(test, optional=True, repeat=True))
        elif q == "+":
            items += [_Item(test), _Item(test, optional=True, repeat=True)]
        elif q == "?":
            items.append(_Item(test, optional=True))
        else:
            items.append(_Item(test))
        i += q in ("*", "+", "?")
        if i < len(body) and body[i] in "*+?":
            msg = f"multiple repeat at position {i} of the filter"
            raise FilterError(msg)
    return items, start, end


def compile_filter(pattern: str) -> Callable[[str], bool]:
    """A predicate telling whether a series name matches ``pattern`` (anywhere, unless anchored).

    Raises
    ------
    FilterError
        If the pattern is malformed or uses what the subset lacks.
    """
    items, anchored_start, anchored_end = _parse(pattern)
    n = len(items)

    def closure(states: set[int]) -> set[int]:
        out, todo = set(states), list(states)
        while todo:
            j = todo.pop()
            if j < n and items[j].optional and j + 1 not in out:
                out.add(j + 1)
                todo.append(j + 1)
        return out

    first = closure({0})

    def match(name: str) -> bool:
        states = set(first)
        for ch in name.lower():
            if n in states and not anchored_end:
                return True
            nxt: set[int] = set()
            for j in states:
                if j < n and items[j].test(ch):
                    if items[j].repeat:
                        nxt.add(j)
                    nxt.add(j + 1)
            states = closure(nxt)
            if not anchored_start:
                states |= first
            if not states:
                return False
        return n in states

    return match
