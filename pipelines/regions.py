"""Active regions from files: reading a full-disk magnetogram into a region frame, classifying a
SHARP cutout, and naming detections after NOAA's and the JSOC's catalogues.

The science is in :mod:`heliowatch.models.regions`; this module is what reads the files and
the catalogues (the NOAA SRS, the SHARP records) around it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from heliowatch.models import measures
from heliowatch.models.core.errors import UsageError
from heliowatch.models.region_cnn import crop
from heliowatch.models.regions.classify import classify_rules
from heliowatch.models.regions.detect import DetectedRegion
from heliowatch.models.regions.frame import Frame, prepare_disk
from heliowatch.models.regions.tracking import match_position
from heliowatch.models.synthetic.regions import SYNTH_CLASSES
from heliowatch.pipelines.errors import DataRejected
from heliowatch.pipelines.fitsio import FitsFrame
from heliowatch.pipelines.frames import load_frame
from heliowatch.pipelines.sharp import read_sharp_record
from heliowatch.pipelines.srs import SRSReport, match_noaa

__all__ = ["classify_cutout", "identify", "preprocess"]


def preprocess(source: Path | str | FitsFrame, *, max_side: int = 1024) -> Frame:
    """Read (or take an already read) full-disk LOS magnetogram and prepare it for region work.

    Raises
    ------
    UsageError
        For a file that is not a full-disk magnetogram in Gauss, has no valid pixel, or is
        truncated/corrupt (one line, naming the problem).
    """
    if isinstance(source, FitsFrame):
        image = source
    else:
        try:
            image = load_frame(Path(source))
        except DataRejected as e:
            raise UsageError(str(e)) from e
    frame = prepare_disk(image, name=image.path.name, max_side=max_side)
    frame.path = str(image.path)
    return frame


def classify_cutout(path: Path, *, cnn: Any = None) -> dict[str, Any]:
    """Mt. Wilson class of one SHARP CEA patch (any of its segment files), by rules or the CNN.

    The rules see the radial field at the patch's 0.03 deg/px; the CNN sees it binned 4x to
    0.12 deg/px (~2"/px at disk centre), its training plate scale.

    Raises
    ------
    UsageError
        If the file is not a SHARP CEA patch or has no valid pixel.
    """
    inp = read_sharp_record(path)  # checks it is a CEA cutout; gives the LOS field
    if inp.patch is None:
        msg = f"{Path(path).name}: the patch has no valid pixels"
        raise UsageError(msg)
    mu = math.cos(math.radians(inp.lat or 0)) * math.cos(math.radians(inp.lon or 0))
    br = inp.patch / max(mu, 0.1)
    cls, probs, m = classify_rules(br, 0.03, measures.cea_pixel_area_cm2(0.03))
    out_m: dict[str, Any] = dict(m)
    if cnn is not None:
        b4 = measures.bin_mean(br, 4)
        row = cnn.predict(crop(b4, b4.shape[0] / 2, b4.shape[1] / 2, inp.lat or 0.0)[None, None])[0]
        out_m["rules_class"] = cls
        probs = {c: round(float(v), 4) for c, v in zip(SYNTH_CLASSES, row, strict=True)}
        cls = max(probs, key=lambda c: probs[c])
    return {
        "file": str(path),
        "harpnum": inp.harpnum,
        "noaa_ar": inp.noaa_ar,
        "t_rec_utc": inp.t_rec_utc,
        "mtwilson": cls,
        "class_probs": probs,
        "measures": {k: round(v, 4) if isinstance(v, float) else v for k, v in out_m.items()},
    }


def identify(
    r: DetectedRegion,
    t_utc: str,
    *,
    srs: SRSReport | None = None,
    sharps: list[dict[str, Any]] | None = None,
    max_deg: float = 6.0,
) -> dict[str, Any]:
    """Catalogue identity of a detection: NOAA number and NOAA's class from an SRS report, HARP
    number from the SHARP records seen so far (``hgs_lat``, ``hgs_lon``, ``t_rec_utc``, ``harpnum``,
    ``noaa_ar``; NRT SHARPs lag the magnetograms, so up to 6 h back, rotated to ``t_utc``).

    Returns ``{"noaa_ar", "harpnum", "srs"}``; the SRS number wins over the SHARP's NOAA_AR.
    """
    out: dict[str, Any] = {"noaa_ar": None, "harpnum": None, "srs": None}
    if srs is not None:
        hit = match_noaa(r.hgs_lat, r.hgs_lon, t_utc, srs, max_deg=max_deg)
        out["srs"] = {"issued": srs.issued.isoformat(), "match": None}
        if hit is not None:
            out["noaa_ar"] = hit.noaa
            out["srs"] = {
                "issued": srs.issued.isoformat(),
                "mtwilson": hit.mtwilson,
                "mcintosh": hit.mcintosh,
                "area_uhem": hit.area_uhem,
            }
    sharp = match_position(
        r.hgs_lat, r.hgs_lon, t_utc, [s for s in sharps or [] if s.get("hgs_lat") is not None], max_deg=max_deg, max_hours=6.0
    )
    if sharp is not None:
        out["harpnum"] = sharp.get("harpnum")
        out["noaa_ar"] = out["noaa_ar"] or sharp.get("noaa_ar")
    return out
