"""Reading SHARP records into the forecaster's input, from segments already read (the daemon) or
from files (the command line).

The region-level flare models read the record's header keywords as the JSOC computes them
(USFLUX, AREA_ACR, TOTUSJH, TOTPOT, R_VALUE, ...: :data:`~heliowatch.models.flares.forecaster.HEADER_KEYS`);
a keyword the header lacks or holds as ``nan`` (HARP 377's R_VALUE) is missing. The older
SHARP-feature models were trained on the line-of-sight SHARP quantities (the SMARP-compatible
USFLUXL, MEANGBL and R_VALUE, with AREA, renamed USFLUX/MEANGBZ in the Sun et al. set;
their MEANGBZ spans 9-43 G/px, the vector-field MEANGBZ of cea_720s headers 78-126 for the
same kind of regions). So the features are taken from the header's USFLUXL/MEANGBL where
present and otherwise computed from the record's ``magnetogram`` (LOS) and ``bitmap``
segments over the HARP mask (``bitmap >= 30``): for HARP 377 this gives MEANGBL 36.0.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from heliowatch.models import measures
from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.times import tai_to_utc
from heliowatch.models.flares.forecaster import HEADER_KEYS, SHARP_KEYS, SharpInput
from heliowatch.pipelines.errors import DataRejected
from heliowatch.pipelines.fitsio import FitsFrame
from heliowatch.pipelines.frames import load_frame

__all__ = ["read_sharp_record", "sharp_input"]


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _noaa_ars(ars: Any, first: Any) -> list[int]:
    """The HARP's NOAA numbers from ``NOAA_ARS`` (``"11158"`` or ``"11157,11158"``), else ``NOAA_AR``."""
    nums = [int(n) for part in str(ars or "").split(",") if (n := _num(part.strip())) is not None and n > 0]
    if not nums and (n := _num(first)) is not None and n > 0:
        nums = [int(n)]
    return nums


def _sibling(path: Path, segment: str) -> Path | None:
    """The file of another segment of the same JSOC-named record (``x.Br.fits`` -> ``x.bitmap.fits``)."""
    parts = path.name.split(".")
    if len(parts) < 3:
        return None
    cand = path.with_name(".".join([*parts[:-2], segment, "fits"]))
    return cand if cand.exists() else None


def _segment_of(path: Path) -> str | None:
    parts = path.name.split(".")
    return parts[-2] if len(parts) >= 3 and parts[-1] == "fits" else None


def read_sharp_record(path: Path) -> SharpInput:
    """Read one SHARP record (any of its segment files, the others found beside it) into a
    :class:`SharpInput`; each file is read once.

    Raises
    ------
    UsageError
        If the file is not a readable SHARP CEA patch (no T_REC, not CEA).
    """
    p = Path(path)
    try:
        primary = load_frame(p)
        segments: dict[str, FitsFrame] = {}
        own = _segment_of(p)
        if own:
            segments[own] = primary
        for seg in ("magnetogram", "Br", "bitmap"):
            if seg not in segments and (sib := _sibling(p, seg)) is not None:
                segments[seg] = load_frame(sib)
    except DataRejected as e:
        raise UsageError(str(e)) from e
    return sharp_input(primary, segments, file=str(p))


def sharp_input(primary: FitsFrame, segments: dict[str, FitsFrame], *, file: str) -> SharpInput:
    """The forecaster's input from a SHARP record's segments (already read).

    ``primary`` gives the header keywords (HARPNUM, NOAA_AR, T_REC, LAT_FWT, ...). The LOS
    field is the ``magnetogram`` segment; missing segments degrade the features (Br x mu for
    the LOS field, :func:`~heliowatch.models.measures.harp_mask` for the mask), and say so. A
    patch with no finite pixel contributes no SHARP quantity.

    Raises
    ------
    UsageError
        If the record is not a SHARP CEA patch (no T_REC, not CEA).
    DataRejected
        With reason ``corrupt`` if its segments disagree on the patch's shape.
    """
    shapes = {seg: f.data.shape for seg, f in segments.items()}
    if len({primary.data.shape, *shapes.values()}) > 1:
        msg = f"{Path(file).name}: the record's segments have different shapes {shapes}"
        raise DataRejected(msg, "corrupt")
    kw = primary.keyword
    if not str(kw("CTYPE1", "")).endswith("CEA") or not kw("T_REC"):
        msg = f"{Path(file).name}: not a SHARP CEA patch (needs CTYPE1 *-CEA and T_REC)"
        raise UsageError(msg)
    try:
        t_rec_utc = tai_to_utc(str(kw("T_REC")))
    except ValueError as e:
        msg = f"{Path(file).name}: T_REC {kw('T_REC')!r} is not a time"
        raise UsageError(msg) from e
    inp = SharpInput(
        harpnum=int(kw("HARPNUM")) if _num(kw("HARPNUM")) is not None else None,
        noaa_ar=int(kw("NOAA_AR")) if (_num(kw("NOAA_AR")) or 0) > 0 else None,
        t_rec_utc=t_rec_utc,
        lat=_num(kw("LAT_FWT")),
        lon=_num(kw("LON_FWT")),
        keywords={k: v for k in dict.fromkeys([*HEADER_KEYS, *SHARP_KEYS]) if (v := _num(kw(k))) is not None},
        file=file,
        noaa_ars=_noaa_ars(kw("NOAA_ARS"), kw("NOAA_AR")),
    )
    if "magnetogram" in segments:
        los = segments["magnetogram"].data.astype(np.float64)
    elif "Br" in segments and inp.lat is not None and inp.lon is not None:
        mu = math.cos(math.radians(inp.lat)) * math.cos(math.radians(inp.lon))
        los = segments["Br"].data.astype(np.float64) * mu
        inp.missing.append("LOS magnetogram (approximated as Br x mu)")
    else:
        los = primary.data.astype(np.float64)
    finite = np.isfinite(los)
    if not finite.any():
        inp.missing.append("patch: no valid pixels")
        return inp
    inp.patch = np.where(finite, los, 0.0)
    if all(k in inp.keywords for k in SHARP_KEYS):
        return inp
    if "bitmap" in segments:
        mask = segments["bitmap"].data >= 30
    else:
        mask = measures.harp_mask(inp.patch)
        inp.missing.append("bitmap (HARP mask approximated from smoothed |B|)")
    area = measures.cea_pixel_area_cm2(_num(kw("CDELT1")) or 0.03)
    patch = inp.patch
    computed = {
        "USFLUXL": lambda: measures.unsigned_flux(patch, area, mask=mask),
        "AREA": lambda: measures.total_area_uhem(area, mask),
        "MEANGBL": lambda: measures.sharp_meangbz(patch, mask=mask),
        "R_VALUE": lambda: measures.schrijver_r(patch),
    }
    for k in SHARP_KEYS:
        if k not in inp.keywords:
            inp.keywords[k] = float(computed[k]())
            inp.computed.append(k)
    return inp
