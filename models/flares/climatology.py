"""Region-class flare climatology (Bloomfield et al. 2012) with persistence, from NOAA SRS data.

Data: ``hayes-flare-ar/AR_flare_ml_23_24.csv``, 33,516 NOAA region-days 1996-08 .. 2018-12
with the SRS properties of the day (issued 00:30 UT) and the region's C/M/X flare counts on
that UTC day.

Two layers, both fitted only on days up to a cutoff:

1. Poisson rates per McIntosh class (the Bloomfield et al. 2012 method): the mean number of
   flares of at least a class per region-day; ``P = 1 - exp(-rate)``.
2. A logistic model that combines log rates with the Mt. Wilson class, log area, the
   distance to the west limb, and persistence (the region's flares on the previous day),
   since class rates alone ignore a region's flaring state.

A forecast for day D uses the SRS issued on day D-1 and the flares of day D-1 (both known by
D 00:00 UT); its label is the region's flares on day D.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from heliowatch.models.core.errors import UsageError

__all__ = ["MTW", "RegionClimatology", "load_region_days", "region_pairs"]

MTW = ["ALPHA", "BETA", "BETA-GAMMA", "BETA-DELTA", "BETA-GAMMA-DELTA", "GAMMA", "GAMMA-DELTA"]
_LEVELS = {"C": "C+", "M": "M+", "X": "X+"}


def load_region_days(path: Path) -> pd.DataFrame:
    """The region-day table with parsed dates (``day``: the UTC day the SRS was issued)."""
    p = Path(path)
    if p.is_dir():
        p = p / "AR_flare_ml_23_24.csv"
    if not p.exists():
        msg = f"{p} not found (expected hayes-flare-ar/AR_flare_ml_23_24.csv)"
        raise UsageError(msg)
    d = pd.read_csv(p).rename(columns={"AR issue_date": "issue"})
    d["day"] = pd.to_datetime(d["issue"]).dt.normalize()
    d["McIntosh"] = d["McIntosh"].astype(str).str.strip().str.upper()
    d["MAGTYPE"] = d["MAGTYPE"].astype(str).str.strip().str.upper()
    return d.sort_values(["noaa_ar", "day"]).reset_index(drop=True)


def region_pairs(days: pd.DataFrame) -> pd.DataFrame:
    """One row per region and forecast day D: features from the D-1 row, label from day D.

    Columns ``prev_C+``, ``prev_M+`` are the region's flares on D-1; ``C+``/``M+``/``X+`` the
    flares on D (0 when the region has no row on D: it rotated off or decayed, and NOAA
    attributes no more flares to it).
    """
    nxt = days[["noaa_ar", "day", "C+", "M+", "X+"]].copy()
    nxt["day"] = nxt["day"] - pd.Timedelta(days=1)
    base = days.rename(columns={"C+": "prev_C+", "M+": "prev_M+", "X+": "prev_X+"})
    pairs = base.merge(nxt, on=["noaa_ar", "day"], how="left")
    for c in ("C+", "M+", "X+"):
        pairs[c] = pairs[c].fillna(0.0)
    pairs["forecast_day"] = pairs["day"] + pd.Timedelta(days=1)
    return pairs


def _mcintosh_parts(mc: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"Z": mc.str[0], "p": mc.str[1], "c": mc.str[2]})


@dataclass
class RegionClimatology:
    """Fitted class rates and the logistic layer, for one flare level (``C`` or ``M``)."""

    level: str
    rates: dict[str, float] = field(default_factory=dict)
    z_rates: dict[str, float] = field(default_factory=dict)
    global_rate: float = 0.0
    columns: list[str] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    coef: list[float] = field(default_factory=list)
    intercept: float = 0.0
    cutoff: str = ""

    def _rate(self, mc: pd.Series) -> np.ndarray:
        z = mc.str[0]
        r = [self.rates.get(m, self.z_rates.get(zz, self.global_rate)) for m, zz in zip(mc, z, strict=True)]
        return np.asarray(r, float)

    def _x(self, pairs: pd.DataFrame) -> pd.DataFrame:
        x = pd.DataFrame(index=pairs.index)
        x["log_rate"] = np.log(self._rate(pairs["McIntosh"]) + 1e-4)
        x["log_area"] = np.log10(pairs["AREA"].clip(lower=1).astype(float))
        lvl = _LEVELS[self.level]
        x["prev_any"] = (pairs[f"prev_{lvl}"] > 0).astype(float)
        x["prev_log"] = np.log1p(pairs[f"prev_{lvl}"].astype(float))
        x["prev_M_any"] = (pairs["prev_M+"] > 0).astype(float)
        # Regions about to cross the west limb are seen for only part of the day.
        x["west_limb"] = (pairs["Longitude"].astype(float) > 70).astype(float)
        for m in MTW:
            x[f"mtw_{m}"] = (pairs["MAGTYPE"] == m).astype(float)
        return x

    @classmethod
    def fit(cls, pairs: pd.DataFrame, level: str, *, cutoff: pd.Timestamp) -> RegionClimatology:
        """Fit on forecast days up to ``cutoff`` (inclusive)."""
        tr = pairs[pairs["forecast_day"] <= cutoff]
        lvl = _LEVELS[level]
        m = cls(level=level, cutoff=str(cutoff.date()))
        counts = tr.groupby("McIntosh")[lvl]
        # Classes seen fewer than 20 times fall back to their Zurich class (first letter).
        m.rates = {k: float(v) for k, v in counts.mean().items() if counts.size()[k] >= 20}
        m.z_rates = {k: float(v) for k, v in tr.groupby(tr["McIntosh"].str[0])[lvl].mean().items()}
        m.global_rate = float(tr[lvl].mean())
        x = m._x(tr)
        m.columns = list(x.columns)
        mean, scale = x.mean(), x.std() + 1e-9
        m.mean, m.scale = mean.tolist(), scale.tolist()
        lr = LogisticRegression(C=1.0, max_iter=3000).fit((x - mean) / scale, (tr[lvl] > 0).astype(int))
        m.coef, m.intercept = lr.coef_[0].tolist(), float(lr.intercept_[0])
        return m

    def poisson(self, pairs: pd.DataFrame) -> np.ndarray:
        """Bloomfield et al. (2012): ``1 - exp(-rate)`` of the region's McIntosh class."""
        return 1 - np.exp(-self._rate(pairs["McIntosh"]))

    def predict(self, pairs: pd.DataFrame) -> np.ndarray:
        """P(at least one flare of the level in the next 24 h), per region."""
        x = self._x(pairs)[self.columns]
        z = ((x - np.array(self.mean)) / np.array(self.scale)).to_numpy() @ np.array(self.coef) + self.intercept
        return 1 / (1 + np.exp(-z))

    def to_json(self) -> dict[str, Any]:
        """Parameters as plain JSON (no pickle)."""
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RegionClimatology:
        """Inverse of :meth:`to_json`."""
        return cls(**d)

    def save(self, path: Path) -> None:
        """Write the parameters as JSON."""
        path.write_text(json.dumps(self.to_json(), indent=1))


def full_disk(p_regions: np.ndarray, p_limb: float) -> float:
    """P(any flare on the disk) = 1 - (1 - p_limb) * prod(1 - p_i)."""
    return float(1 - (1 - p_limb) * math.prod(1 - float(p) for p in p_regions))
