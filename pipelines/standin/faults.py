"""Fault injection for the JSOC stand-in, parsed from a ``--fault`` spec.

A spec is a comma-separated list of ``name[=value]``:

==================  ==============================================================
``latency=S``       add S seconds to every request
``5xx=P``           answer a request with HTTP 503 with probability P
``5xx_first=N``     answer the first N requests with HTTP 503
``down=A:B``        answer 503 to everything between A and B seconds after start
``timeout=P``       hang (longer than any client timeout) with probability P
``timeout_first=N`` hang on the first N requests
``hang_s=S``        how long a hang lasts (default 120 s)
``truncate=P``      cut a downloaded file short with probability P
``truncate_first=N`` cut the first N downloads short
``corrupt=P``       flip bytes in the data part of a download with probability P
``corrupt_first=N`` corrupt the first N downloads
``pending_forever`` asynchronous (``url``) exports never finish
``status7``         the first ``exp_request`` answers status 7 (a request is pending)
``aia_out_of_order=S`` AIA records appear up to S seconds late, out of time order
``seed=N``          seed of the random faults
==================  ==============================================================
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

__all__ = ["FaultSpec"]

_FLOAT = {"latency", "5xx", "timeout", "truncate", "corrupt", "hang_s", "aia_out_of_order"}
_INT = {"5xx_first", "timeout_first", "truncate_first", "corrupt_first", "seed"}
_FLAG = {"pending_forever", "status7"}


@dataclass
class FaultSpec:
    """Parsed faults, with the counters that make ``*_first`` deterministic."""

    latency: float = 0.0
    p_5xx: float = 0.0
    first_5xx: int = 0
    down: tuple[float, float] | None = None
    p_timeout: float = 0.0
    first_timeout: int = 0
    hang_s: float = 120.0
    p_truncate: float = 0.0
    first_truncate: int = 0
    p_corrupt: float = 0.0
    first_corrupt: int = 0
    pending_forever: bool = False
    status7: bool = False
    aia_out_of_order: float = 0.0
    seed: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _t0: float = field(default_factory=time.monotonic, repr=False)

    @classmethod
    def parse(cls, spec: str | None) -> FaultSpec:
        """Parse a spec string; raises ``ValueError`` naming the bad item."""
        f = cls()
        for item in (spec or "").split(","):
            item = item.strip()
            if not item:
                continue
            name, _, value = item.partition("=")
            name = name.strip()
            try:
                if name == "down":
                    a, b = value.split(":")
                    f.down = (float(a), float(b))
                elif name in _FLAG:
                    setattr(f, name, True)
                elif name in _FLOAT:
                    attr = {"5xx": "p_5xx", "timeout": "p_timeout", "truncate": "p_truncate", "corrupt": "p_corrupt"}
                    setattr(f, attr.get(name, name), float(value))
                elif name in _INT:
                    attr = {
                        "5xx_first": "first_5xx",
                        "timeout_first": "first_timeout",
                        "truncate_first": "first_truncate",
                        "corrupt_first": "first_corrupt",
                    }
                    setattr(f, attr.get(name, name), int(value))
                else:
                    msg = f"unknown fault {name!r}"
                    raise ValueError(msg)
            except ValueError as e:
                msg = f"bad fault spec item {item!r}: {e}"
                raise ValueError(msg) from e
        f._rng = random.Random(f.seed)
        return f

    def _roll(self, p: float, counter: str) -> bool:
        with self._lock:
            left = getattr(self, counter)
            if left > 0:
                setattr(self, counter, left - 1)
                return True
            return p > 0 and self._rng.random() < p

    def request_fault(self) -> str | None:
        """Decide the fate of one CGI request: ``None``, ``"5xx"`` or ``"timeout"``."""
        if self.down is not None:
            t = time.monotonic() - self._t0
            if self.down[0] <= t < self.down[1]:
                return "5xx"
        if self._roll(self.p_5xx, "first_5xx"):
            return "5xx"
        if self._roll(self.p_timeout, "first_timeout"):
            return "timeout"
        return None

    def download_fault(self) -> str | None:
        """Decide the fate of one file download: ``None``, ``"truncate"`` or ``"corrupt"``."""
        fault = self.request_fault()
        if fault:
            return fault
        if self._roll(self.p_truncate, "first_truncate"):
            return "truncate"
        if self._roll(self.p_corrupt, "first_corrupt"):
            return "corrupt"
        return None

    def take_status7(self) -> bool:
        """Whether this export request should be refused with status 7 (once)."""
        with self._lock:
            if self.status7:
                self.status7 = False
                return True
            return False
