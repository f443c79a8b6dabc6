"""``heliowatch synth {magnetogram,sharp,aia-sequence,bipole,emergence,gallery}``."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from heliowatch.daemon.cli.common import add_config
from heliowatch.models.core.errors import UsageError
from heliowatch.models.synthetic.aia import synth_aia_sequence
from heliowatch.models.synthetic.bipole import synth_bipole
from heliowatch.models.synthetic.emergence import synth_emergence
from heliowatch.models.synthetic.fitsout import write_fits, write_truth
from heliowatch.models.synthetic.magnetogram import RegionSpec, random_regions, synth_magnetogram
from heliowatch.models.synthetic.sharp import synth_sharp
from heliowatch.pipelines.gallery import make_gallery

__all__ = ["parse_region", "register"]


def _time(s: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError as e:
        msg = f"--time {s!r} is not an ISO 8601 time such as 2014-01-07T12:00:00"
        raise UsageError(msg) from e
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def parse_region(text: str) -> Any:
    """``CLASS:LAT:LON[:SIZE]`` -> RegionSpec."""
    parts = text.split(":")
    if len(parts) not in (3, 4):
        msg = f"--region {text!r}: expected CLASS:LAT:LON[:SIZE], e.g. beta-delta:-15:20"
        raise UsageError(msg)
    try:
        nums = [float(p) for p in parts[1:]]
    except ValueError as e:
        msg = f"--region {text!r}: LAT, LON and SIZE must be numbers"
        raise UsageError(msg) from e
    return RegionSpec(parts[0], nums[0], nums[1], nums[2] if len(nums) == 3 else 1.0)


def _jsoc_stem(series: str, *pkeys: str) -> str:
    return ".".join([series, *pkeys])


def _trec_a(t_rec: str) -> str:
    return t_rec.replace(".", "").replace(":", "").replace("-", "")


def _cmd_magnetogram(a: argparse.Namespace) -> int:
    t = _time(a.time)
    regions = [parse_region(r) for r in a.region] if a.region else random_regions(t, a.n_regions, np.random.default_rng(a.seed))
    t0 = time.perf_counter()
    try:
        data, header, truth = synth_magnetogram(
            t, regions, size=a.size, seed=a.seed, crota=a.crota, noise_g=a.noise, quality=a.quality
        )
    except ValueError as e:
        raise UsageError(str(e)) from e
    out = Path(a.out)
    path = out if out.suffix == ".fits" else out / f"{_jsoc_stem(a.series, _trec_a(header['T_REC']), '3')}.magnetogram.fits"
    write_fits(path, data, header)
    truth["generation_s"] = round(time.perf_counter() - t0, 3)
    tp = write_truth(path, truth)
    print(f"wrote {path} ({a.size}x{a.size}, {len(truth['regions'])} region(s)) and {tp}", file=sys.stderr)
    return 0


def _cmd_sharp(a: argparse.Namespace) -> int:
    try:
        segs, truth = synth_sharp(
            _time(a.time), a.mtwilson, a.lat, a.lon, harpnum=a.harpnum, noaa_ar=a.noaa, seed=a.seed, size=a.size
        )
    except ValueError as e:
        raise UsageError(str(e)) from e
    out = Path(a.out)
    t_rec = segs["Br"][1]["T_REC"]
    written = []
    for seg, (data, header) in segs.items():
        if out.suffix == ".fits":
            path = out if seg == "magnetogram" else out.with_name(out.name.removesuffix(".fits") + f".{seg}.fits")
        else:
            path = out / f"{_jsoc_stem(a.series, str(a.harpnum), _trec_a(t_rec))}.{seg}.fits"
        written.append(write_fits(path, data, header))
    tp = write_truth(
        out if out.suffix == ".fits" else out / f"{_jsoc_stem(a.series, str(a.harpnum), _trec_a(t_rec))}.truth.json", truth
    )
    print(f"wrote {len(written)} segment file(s) ({', '.join(segs)}) to {written[0].parent} and {tp}", file=sys.stderr)
    return 0


def _write_sequence(
    out: Path, cube: np.ndarray, headers: list[fits.Header], truth: dict[str, Any], *, series: str, segment: str
) -> str:
    if out.suffix == ".fits":
        # One file, one image HDU per frame: sunpy.map.Map(path) returns the list of maps.
        hdus: list[Any] = [fits.PrimaryHDU(cube[0], header=headers[0])]
        hdus += [fits.ImageHDU(f, header=h) for f, h in zip(cube[1:], headers[1:], strict=True)]
        for h in hdus:
            h.header["ORIGIN"] = ("heliowatch synthetic", "not an observation")
        out.parent.mkdir(parents=True, exist_ok=True)
        fits.HDUList(hdus).writeto(out, checksum=True, overwrite=True)
        write_truth(out, truth)
        return f"{out} ({len(cube)} frames)"
    for f, h in zip(cube, headers, strict=True):
        write_fits(out / f"{_jsoc_stem(series, _trec_a(h['T_REC']), str(h.get('FSN', 0)))}.{segment}.fits", f, h)
    write_truth(out / f"{series}.{_trec_a(headers[0]['T_REC'])}.truth.json", truth)
    return f"{len(cube)} frame files in {out}"


def _cmd_aia(a: argparse.Namespace) -> int:
    try:
        cube, headers, truth = synth_aia_sequence(
            _time(a.time), jet=a.jet, seed=a.seed, n_frames=a.frames, distractors=not a.no_distractors
        )
    except ValueError as e:
        raise UsageError(str(e)) from e
    where = _write_sequence(Path(a.out), cube, headers, truth, series=a.series, segment="image_lev1")
    print(f"wrote {where}; jet={truth['jet']}", file=sys.stderr)
    return 0


def _cmd_emergence(a: argparse.Namespace) -> int:
    try:
        cube, headers, truth = synth_emergence(_time(a.time), emerging=not a.control, seed=a.seed, n_frames=a.frames)
    except ValueError as e:
        raise UsageError(str(e)) from e
    where = _write_sequence(Path(a.out), cube, headers, truth, series="heliowatch.emergence", segment="magnetogram")
    print(f"wrote {where}; emerging={truth['emerging']}", file=sys.stderr)
    return 0


def _cmd_bipole(a: argparse.Namespace) -> int:
    try:
        img, header, truth = synth_bipole(
            radius_px=a.radius, field_g=a.field, separation_px=a.separation, order=a.order, size=a.size, angle_deg=a.angle
        )
    except ValueError as e:
        raise UsageError(str(e)) from e
    out = Path(a.out)
    path = out if out.suffix == ".fits" else out / "bipole.fits"
    write_fits(path, img, header)
    write_truth(path, truth)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def _cmd_gallery(a: argparse.Namespace) -> int:
    for p in make_gallery(Path(a.out), seed=a.seed):
        print(f"wrote {p}", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    """``heliowatch synth`` and its generators."""
    p = sub.add_parser("synth", help="synthetic SDO data with ground truth")
    add_config(p)
    s = p.add_subparsers(dest="kind", required=True, metavar="KIND")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--out", required=True, help="X.fits (truth in X.truth.json) or a directory (JSOC-named files)")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--time", default="2014-01-07T12:00:00", help="observation time, UTC (ISO 8601)")

    m = s.add_parser("magnetogram", help="full-disk HMI LOS magnetogram")
    common(m)
    m.add_argument("--size", type=int, default=4096, help="image side (4096 = HMI; smaller bins the plate scale)")
    m.add_argument("--region", action="append", metavar="CLASS:LAT:LON[:SIZE]", help="place a region (repeatable)")
    m.add_argument("--n-regions", type=int, default=5, help="random regions when no --region is given")
    m.add_argument("--crota", type=float, default=180.0, help="CROTA2 of the stored frame: 180 (HMI) or 0")
    m.add_argument("--noise", type=float, default=10.0, help="LOS noise, G")
    m.add_argument("--quality", type=lambda v: int(v, 0), default=0, help="QUALITY word to write")
    m.add_argument("--series", default="hmi.M_720s_nrt", help="series name used for directory output")
    m.set_defaults(func=_cmd_magnetogram)

    sh = s.add_parser("sharp", help="SHARP CEA patch (magnetogram, Br, bitmap, conf_disambig)")
    common(sh)
    sh.add_argument("--class", dest="mtwilson", default="beta", help="Mt. Wilson class")
    sh.add_argument("--lat", type=float, default=-15.0)
    sh.add_argument("--lon", type=float, default=10.0)
    sh.add_argument("--size", type=float, default=1.0, help="region scale")
    sh.add_argument("--harpnum", type=int, default=90001)
    sh.add_argument("--noaa", type=int, default=0)
    sh.add_argument("--series", default="hmi.sharp_cea_720s_nrt")
    sh.set_defaults(func=_cmd_sharp)

    aia = s.add_parser("aia-sequence", help="30-frame AIA 304 sequence, with or without a jet")
    common(aia)
    g = aia.add_mutually_exclusive_group()
    g.add_argument("--jet", dest="jet", action="store_true", default=True, help="include a jet (default)")
    g.add_argument("--no-jet", dest="jet", action="store_false", help="no jet (a negative example)")
    aia.add_argument("--frames", type=int, default=30)
    aia.add_argument("--no-distractors", action="store_true")
    aia.add_argument("--series", default="aia.lev1_nrt2")
    aia.set_defaults(func=_cmd_aia)

    b = s.add_parser("bipole", help="two uniform-field disks (the seed papers' CNN probe)")
    b.add_argument("--out", required=True)
    b.add_argument("--radius", type=float, default=8.0, help="disk radius, px")
    b.add_argument("--field", type=float, default=1000.0, help="|B| inside the disks, G")
    b.add_argument("--separation", type=float, default=30.0, help="centre distance, px")
    b.add_argument("--order", default="positive-leading", choices=["positive-leading", "negative-leading"])
    b.add_argument("--size", type=int, default=128)
    b.add_argument("--angle", type=float, default=0.0, help="axis angle from east-west, degrees")
    b.set_defaults(func=_cmd_bipole)

    e = s.add_parser("emergence", help="85x85 Postel patch sequence with (or without) flux emergence")
    common(e)
    e.add_argument("--control", action="store_true", help="no emergence")
    e.add_argument("--frames", type=int, default=12)
    e.set_defaults(func=_cmd_emergence)

    gal = s.add_parser("gallery", help="PNG gallery of every generator")
    gal.add_argument("--out", required=True)
    gal.add_argument("--seed", type=int, default=0)
    gal.set_defaults(func=_cmd_gallery)
