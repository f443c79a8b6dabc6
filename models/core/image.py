"""The one thing the science code needs of an image: its pixels and its header keywords.

A FITS file read by the pipelines (``heliowatch.pipelines.fitsio.FitsFrame``) and an
in-memory synthetic frame (:class:`ArrayImage`) both satisfy :class:`Image`, so the region,
flare, emergence and jet computations never read files themselves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from astropy.io.fits.verify import VerifyError

__all__ = ["ArrayImage", "Image"]


class Image(Protocol):
    """Pixels and header keywords (missing or unparsable keywords give ``default``)."""

    @property
    def data(self) -> np.ndarray:
        """The image (2-D)."""
        ...

    def keyword(self, name: str, default: Any = None) -> Any:
        """A header value, or ``default``."""
        ...


@dataclass
class ArrayImage:
    """An :class:`Image` from an array and a header mapping (``astropy.io.fits.Header`` or a dict).

    ``MISSING`` strings count as absent and ``'nan'`` strings as NaN, as in JSOC headers.
    """

    data: np.ndarray
    header: Mapping[str, Any] = field(default_factory=dict)

    def keyword(self, name: str, default: Any = None) -> Any:
        """A header value, or ``default``."""
        if name not in self.header:
            return default
        try:
            v = self.header[name]
        except (ValueError, VerifyError):  # an unparsable card (untrusted header) counts as absent
            return default
        if isinstance(v, str):
            text = v.strip().upper()
            if text == "MISSING":
                return default
            if text == "NAN":
                return math.nan
        return v
