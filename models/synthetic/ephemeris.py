"""Sun-Earth geometry for a date (sunpy's built-in ephemeris; no network)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from astropy.time import Time
from sunpy.coordinates import sun

from heliowatch.models.measures import RSUN_REF_M

__all__ = ["Ephemeris", "ephemeris", "hale_leading_sign", "slot_t_rec"]


@dataclass(frozen=True)
class Ephemeris:
    """Observer geometry at a time (Earth's, which SDO shares within ~0.003 %)."""

    time_utc: dt.datetime
    b0_deg: float
    l0_deg: float
    dsun_m: float
    carrington_rotation: int

    @property
    def rsun_obs_arcsec(self) -> float:
        """Apparent solar radius, arcsec (FITS RSUN_OBS)."""
        return math.degrees(math.asin(RSUN_REF_M / self.dsun_m)) * 3600


def ephemeris(t: dt.datetime) -> Ephemeris:
    """Observer B0, L0 (Carrington longitude of disk centre) and distance at ``t`` (UTC)."""
    tt = Time(t.replace(tzinfo=None), scale="utc")
    return Ephemeris(
        time_utc=t,
        b0_deg=float(sun.B0(tt).deg),
        l0_deg=float(sun.L0(tt).deg),
        dsun_m=float(sun.earth_distance(tt).to_value("m")),
        carrington_rotation=int(sun.carrington_rotation_number(tt)),
    )


def hale_leading_sign(lat_deg: float, t: dt.datetime) -> int:
    """Leading-spot polarity by Hale's law: +1 or -1.

    Cycle 24 (to 2019-12): southern-hemisphere regions lead with positive polarity (measured
    on the real SHARP of NOAA 11158 at S20 in 2011: positive flux lies west of negative),
    northern ones with negative. Cycle 25 reverses both.
    """
    south = lat_deg < 0
    cycle24 = t < dt.datetime(2019, 12, 1, tzinfo=t.tzinfo)
    sign = 1 if south else -1
    return sign if cycle24 else -sign


def slot_t_rec(t: dt.datetime, cadence_s: int = 720) -> dt.datetime:
    """The HMI T_REC slot (UTC) nearest ``t`` for a cadence."""
    epoch = dt.datetime(1993, 1, 1, tzinfo=dt.UTC) if t.tzinfo else dt.datetime(1993, 1, 1)
    n = round((t - epoch).total_seconds() / cadence_s)
    return epoch + dt.timedelta(seconds=n * cadence_s)
