"""Statistics of real coronal jets from the Solar Jet Hunter catalogue (Musset et al. 2024, A&A 688 A127).

The catalogue (``Jet_clusters_3.0_2.0_paperID.csv``, 883 jets seen in AIA 304 A, 2011-2016) gives
per jet: start time, duration (minutes), base point (helioprojective X/Y, arcsec, and rounded
Stonyhurst lon/lat, degrees), maximum height and mean width of the volunteers' boxes (arcsec),
and a plane-of-sky velocity in **arcsec per second** (the catalogue authors' own statistics
notebook multiplies it by 725 km/arcsec to plot km/s, and converts heights with 0.73 Mm/arcsec);
the velocity is NaN for the 512 jets whose middle flag digit is 1. Header names after the first
start with a space; :func:`load_sjh` strips them and adds physical columns.

:class:`JetStats` draws jets by bootstrapping whole catalogue rows, so height, width, duration,
speed and position keep their real joint distribution (heights and durations are correlated;
limb jets are taller). A row without a velocity borrows one from a measured row with a similar
height and duration (nearest neighbours in log height and log duration), and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from heliowatch.models.core.errors import UsageError

__all__ = ["KM_PER_ARCSEC_SJH", "JetStats", "builtin_sample", "load_sjh", "rsun_arcsec_on"]

#: The km/arcsec the catalogue's authors use to turn its arcsec/s velocities into km/s.
KM_PER_ARCSEC_SJH = 725.0
_RSUN_1AU_ARCSEC = 959.63
_NEED = ("date", "duration", "basepoint_X", "basepoint_Y", "max_height", "avg_width", "velocity")


def rsun_arcsec_on(dates: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Apparent solar radius (arcsec) on each date, from the Earth-Sun distance (good to ~0.1 %).

    Closed form (eccentricity 0.0167, perihelion about 3 January) so that 883 rows cost nothing;
    the pipelines use the header's RSUN_OBS for real frames.
    """
    d = pd.DatetimeIndex(dates)
    doy = np.asarray(d.day_of_year, dtype=np.float64) + np.asarray(d.hour, dtype=np.float64) / 24.0
    dist_au = 1.0 - 0.01672 * np.cos(2 * math.pi * (doy - 4.0) / 365.256)
    return _RSUN_1AU_ARCSEC / dist_au


def load_sjh(path: Path | str) -> pd.DataFrame:
    """Read the Solar Jet Hunter catalogue CSV into a table with physical columns.

    Parameters
    ----------
    path : path-like
        ``Jet_clusters_3.0_2.0_paperID.csv`` (CRLF line endings, header names after the first
        starting with a space; both are handled).

    Returns
    -------
    pandas.DataFrame
        The catalogue's columns (names stripped; ``#sjh_ID`` becomes ``sjh_id``) plus
        ``t_start`` (UTC datetime), ``duration_s``, ``height_arcsec``, ``height_mm``,
        ``width_arcsec``, ``speed_km_s`` (NaN where the catalogue has none), ``rsun_arcsec``,
        ``r_arcsec``, ``r_over_rsun`` and ``beyond_limb`` (base at r >= 1 R_sun).

    Raises
    ------
    UsageError
        If the file is missing or lacks the catalogue's columns.
    """
    p = Path(path)
    if not p.is_file():
        msg = f"{p}: no Solar Jet Hunter catalogue there"
        raise UsageError(msg)
    df = pd.read_csv(p)
    df.columns = [str(c).strip() for c in df.columns]
    df = df.rename(columns={"#sjh_ID": "sjh_id"})
    missing = [c for c in _NEED if c not in df.columns]
    if missing:
        msg = f"{p}: not the Solar Jet Hunter catalogue (missing columns {missing})"
        raise UsageError(msg)
    return _derive(df)


def _derive(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["t_start"] = pd.to_datetime(df["date"], utc=True)
    df["duration_s"] = df["duration"].astype(float) * 60.0
    df["height_arcsec"] = df["max_height"].astype(float)
    df["height_mm"] = df["height_arcsec"] * KM_PER_ARCSEC_SJH / 1000.0
    df["width_arcsec"] = df["avg_width"].astype(float)
    df["speed_km_s"] = pd.to_numeric(df["velocity"], errors="coerce") * KM_PER_ARCSEC_SJH
    df["rsun_arcsec"] = rsun_arcsec_on(df["t_start"])
    df["r_arcsec"] = np.hypot(df["basepoint_X"].astype(float), df["basepoint_Y"].astype(float))
    df["r_over_rsun"] = df["r_arcsec"] / df["rsun_arcsec"]
    df["beyond_limb"] = df["r_over_rsun"] >= 1.0
    return df


#: 32 real catalogue rows (every 28th by date): id, max_height ("), avg_width ("), duration (s), speed (km/s or
#: None), base X, Y ("). The generators fall back on them when no catalogue path is given.
_BUILTIN_ROWS: tuple[tuple[str, float, float, float, float | None, float, float], ...] = (
    ("sjh_2011-01-20T09_1", 173.8, 52.3, 2616, 101, -226.6, -957.0),
    ("sjh_2011-03-20T08_2", 217.6, 88.1, 840, None, -873.3, -415.1),
    ("sjh_2011-04-08T17_1", 73.5, 25.9, 648, 171, -246.6, -300.7),
    ("sjh_2011-05-28T10_1", 44.9, 21.2, 336, None, -905.8, 289.9),
    ("sjh_2011-11-28T07_1", 155.5, 47.3, 336, None, 314.6, 303.8),
    ("sjh_2012-03-08T21_1", 290.6, 46.9, 1596, 167, 806.8, 551.7),
    ("sjh_2012-06-23T06_1", 85.7, 32.2, 648, 199, 29.2, -963.8),
    ("sjh_2012-10-19T22_1", 44.6, 21.5, 648, None, 182.6, -963.4),
    ("sjh_2012-12-16T19_1", 220.3, 79.6, 1440, 341, -962.8, 211.1),
    ("sjh_2012-12-17T08_2", 94.5, 31.5, 504, None, -966.7, 186.0),
    ("sjh_2013-05-05T06_1", 167.6, 35.4, 3456, 49, -902.4, -312.0),
    ("sjh_2013-10-12T14_2", 32.1, 20.2, 648, 75, -930.6, 270.3),
    ("sjh_2014-04-10T19_1", 179.7, 103.9, 1584, 104, -921.4, -276.2),
    ("sjh_2014-07-18T05_1", 97.0, 62.8, 1272, 75, -924.7, 221.8),
    ("sjh_2014-12-03T18_1", 64.9, 23.5, 348, None, 875.3, -237.9),
    ("sjh_2015-02-07T10_1", 264.7, 64.4, 2532, 308, 704.4, 259.7),
    ("sjh_2015-05-18T21_1", 92.3, 39.4, 2820, 27, 928.9, 227.5),
    ("sjh_2015-08-09T01_1", 36.8, 16.7, 648, 85, 93.2, -378.3),
    ("sjh_2015-09-10T13_2", 88.3, 46.7, 648, None, 944.2, 142.0),
    ("sjh_2015-09-23T02_4", 123.7, 74.3, 720, None, 923.2, -284.9),
    ("sjh_2015-09-23T08_3", 152.1, 44.2, 720, None, 935.6, -252.6),
    ("sjh_2015-09-23T19_3", 183.2, 383.0, 720, None, 868.2, -436.1),
    ("sjh_2015-12-15T14_1", 415.0, 198.6, 336, None, -774.2, 320.7),
    ("sjh_2016-02-16T16_1", 110.4, 37.0, 3528, 82, 925.2, 233.0),
    ("sjh_2016-02-18T07_3", 117.5, 66.4, 1008, None, 954.5, 214.4),
    ("sjh_2016-02-18T18_3", 142.6, 96.5, 1008, None, 954.8, 211.7),
    ("sjh_2016-04-07T06_1", 100.8, 53.4, 3360, None, -979.5, -9.7),
    ("sjh_2016-05-23T16_1", 79.1, 67.1, 408, None, 686.5, -73.9),
    ("sjh_2016-05-24T09_1", 71.8, 24.2, 768, 136, 809.8, -107.3),
    ("sjh_2016-07-12T08_2", 118.5, 26.2, 1908, 68, 921.7, 246.4),
    ("sjh_2016-10-04T18_1", 34.6, 11.7, 336, None, -809.6, -262.2),
    ("sjh_2016-10-28T01_1", 37.5, 20.1, 648, 87, 931.8, 200.1),
)


def builtin_sample() -> pd.DataFrame:
    """32 real catalogue rows embedded here (for generators run without the data directory)."""
    rows = []
    for sid, h, w, dur, v, x, y in _BUILTIN_ROWS:
        day, hour = sid[4:14], sid[15:17]
        rows.append(
            {
                "sjh_id": sid,
                "date": f"{day}T{hour}:00:00",
                "duration": dur / 60.0,
                "basepoint_X": x,
                "basepoint_Y": y,
                "max_height": h,
                "avg_width": w,
                "velocity": math.nan if v is None else v / KM_PER_ARCSEC_SJH,
            }
        )
    return _derive(pd.DataFrame(rows))


def _q(s: pd.Series) -> dict[str, float]:
    v = s.dropna().to_numpy(dtype=float)
    qs = np.percentile(v, [5, 25, 50, 75, 95]) if v.size else [math.nan] * 5
    return {
        "n": int(v.size),
        "p05": float(qs[0]),
        "p25": float(qs[1]),
        "median": float(qs[2]),
        "p75": float(qs[3]),
        "p95": float(qs[4]),
    }


@dataclass
class JetStats:
    """Jet parameters drawn from the real catalogue (bootstrap of whole rows).

    Attributes
    ----------
    table : pandas.DataFrame
        The output of :func:`load_sjh`.
    """

    table: pd.DataFrame

    @classmethod
    def from_path(cls, path: Path | str) -> JetStats:
        """Load the catalogue at ``path``."""
        return cls(load_sjh(path))

    @classmethod
    def builtin(cls) -> JetStats:
        """The 32 real rows embedded in this module (a small, honest stand-in for the whole catalogue)."""
        return cls(builtin_sample())

    def __post_init__(self) -> None:
        if len(self.table) == 0:
            msg = "JetStats needs at least one catalogue row"
            raise UsageError(msg)
        t = self.table
        self._measured = np.flatnonzero(np.isfinite(t["speed_km_s"].to_numpy(dtype=float)))
        feats = np.column_stack([np.log(t["height_arcsec"].to_numpy(dtype=float)), np.log(t["duration_s"].to_numpy(dtype=float))])
        self._feats = (feats - feats.mean(axis=0)) / np.where(feats.std(axis=0) > 0, feats.std(axis=0), 1.0)

    def sample(self, rng: np.random.Generator, *, limb: bool | None = None) -> dict[str, Any]:
        """One jet's parameters, a real catalogue row drawn at random.

        Parameters
        ----------
        rng : numpy.random.Generator
        limb : bool or None
            True: draw only among jets whose base is at or beyond 0.95 R_sun; False: only
            among the others; None: any row (the catalogue's own mix, 60 % at the limb).

        Returns
        -------
        dict
            ``sjh_id``, ``height_arcsec``, ``width_arcsec``, ``duration_s``, ``speed_km_s``,
            ``speed_imputed`` (the row had no velocity: borrowed from a similar measured row),
            ``base_x_arcsec``/``base_y_arcsec`` (as catalogued), ``r_over_rsun`` (base radius
            in units of that date's solar radius), ``lat_deg``, ``lon_deg``.
        """
        t = self.table
        r = t["r_over_rsun"].to_numpy(dtype=float)
        pool = np.arange(len(t))
        if limb is True:
            pool = np.flatnonzero(r >= 0.95)
        elif limb is False:
            pool = np.flatnonzero(r < 0.95)
        if pool.size == 0:
            msg = f"no catalogue row with limb={limb}"
            raise UsageError(msg)
        i = int(rng.choice(pool))
        row = t.iloc[i]
        speed = float(row["speed_km_s"])
        imputed = not math.isfinite(speed)
        if imputed:
            if self._measured.size == 0:
                msg = "the catalogue has no measured velocity to borrow from"
                raise UsageError(msg)
            d = np.sum((self._feats[self._measured] - self._feats[i]) ** 2, axis=1)
            near = self._measured[np.argsort(d)[: min(25, self._measured.size)]]
            speed = float(t["speed_km_s"].iloc[int(rng.choice(near))])
        return {
            "sjh_id": str(row.get("sjh_id", i)),
            "height_arcsec": float(row["height_arcsec"]),
            "width_arcsec": float(row["width_arcsec"]),
            "duration_s": float(row["duration_s"]),
            "speed_km_s": speed,
            "speed_imputed": imputed,
            "base_x_arcsec": float(row["basepoint_X"]),
            "base_y_arcsec": float(row["basepoint_Y"]),
            "r_over_rsun": float(r[i]),
            "lat_deg": float(row.get("basepoint_Y_latitude", math.nan)),
            "lon_deg": float(row.get("basepoint_X_longitude", math.nan)),
        }

    def summary(self) -> dict[str, Any]:
        """The catalogue's distributions (quantiles) and limb fractions, for documentation."""
        t = self.table
        r = t["r_over_rsun"]
        return {
            "n_jets": len(t),
            "date_range": [t["t_start"].min().isoformat(), t["t_start"].max().isoformat()],
            "height_arcsec": _q(t["height_arcsec"]),
            "height_mm": _q(t["height_mm"]),
            "width_arcsec": _q(t["width_arcsec"]),
            "speed_km_s": _q(t["speed_km_s"]),
            "duration_min": _q(t["duration_s"] / 60.0),
            "abs_latitude_deg": _q(t["basepoint_Y_latitude"].abs())
            if "basepoint_Y_latitude" in t
            else _q(pd.Series([], dtype=float)),
            "frac_base_beyond_limb": float((r >= 1.0).mean()),
            "frac_base_at_or_beyond_0p95": float((r >= 0.95).mean()),
            "frac_speed_missing": float(t["speed_km_s"].isna().mean()),
            "corr_log_height_log_duration": float(np.corrcoef(np.log(t["height_arcsec"]), np.log(t["duration_s"]))[0, 1]),
        }
