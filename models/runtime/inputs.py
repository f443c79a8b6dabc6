"""Inputs for parity checks and benchmarks: random, and real where real data exist.

- flare CNNs: the real SHARP LOS magnetogram of HARP 377 (NOAA 11158) from the bundled
  archive, binned 2x2 to 0.06 deg/px (an integer factor, no resampling), in kG, centred in
  the 256x512 canvas with zero padding; southern regions are flipped north-south and in sign
  (hemisphere normalisation);
- emergence FCN: synthetic emergence frames (no real tracked patches are available offline);
- jet model: the bundled synthetic AIA 304 jet sequence (no real AIA sequences offline);
- region detector: a semi-real full disk, the bundled real SHARP patches placed on a synthetic
  quiet Sun (no real full-disk magnetogram in Gauss offline).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from heliowatch.models import registry
from heliowatch.models.measures import bin_mean

__all__ = ["pad_to_canvas", "random_inputs", "real_inputs"]


def random_inputs(name: str, batch: int, *, seed: int = 0) -> np.ndarray:
    """Standard-normal inputs of the model's example shape with ``batch`` items."""
    spec = registry.get(name)
    shape = (batch, *spec.example_shape[1:])
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def pad_to_canvas(patch: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centre ``patch`` in a zero canvas of ``shape``, cropping the centre if it is larger.

    Padding, not resizing: the seed paper traced CNN artefacts to resized patches.
    """
    out = np.zeros(shape, np.float32)
    h, w = min(patch.shape[0], shape[0]), min(patch.shape[1], shape[1])
    py, px = (patch.shape[0] - h) // 2, (patch.shape[1] - w) // 2
    oy, ox = (shape[0] - h) // 2, (shape[1] - w) // 2
    out[oy : oy + h, ox : ox + w] = np.nan_to_num(patch[py : py + h, px : px + w])
    return out


def real_inputs(name: str) -> tuple[np.ndarray, str]:
    """One real (or, where none exists offline, bundled synthetic) input and its description."""
    from heliowatch.daemon.service import demo_archive_path  # noqa: PLC0415
    from heliowatch.pipelines.fitsio import read_fits  # noqa: PLC0415

    spec = registry.get(name)
    if name.startswith("flare"):
        f = read_fits(demo_archive_path() / "sharp" / "hmi.sharp_cea_720s.377.20110215_020000_TAI.magnetogram.fits")
        d = np.nan_to_num(f.data.astype(np.float64))
        d = bin_mean(d, 2)
        if (f.keyword("LAT_FWT") or 0) < 0:
            d = -d[::-1]  # hemisphere normalisation, as the flare CNNs' inputs
        x = pad_to_canvas(d / 1000.0, spec.example_shape[2:])
        return x[None, None].astype(np.float32), "real SHARP LOS, HARP 377 (NOAA 11158) 2011-02-15 02:00 TAI"
    if name == "region-classifier":
        from heliowatch.models.region_cnn import crop  # noqa: PLC0415

        f = read_fits(demo_archive_path() / "sharp" / "hmi.sharp_cea_720s.377.20110215_020000_TAI.Br.fits")
        d = np.nan_to_num(f.data.astype(np.float64))
        d = bin_mean(d, 4)
        # CEA rows increase with latitude, as in the north-up full-disk frames; 0.12 deg/px ~ 2"/px.
        c = crop(d, d.shape[0] / 2, d.shape[1] / 2, float(f.keyword("LAT_FWT") or 0))
        return c[None, None], "real SHARP Br, HARP 377 (NOAA 11158), binned 4x"
    if name == "region-detector":
        return _semireal_disk(), "semi-real full disk: the bundled real SHARP patches (HARP 377, 7115) on a synthetic quiet Sun"
    if name.startswith("emergence"):
        from heliowatch.models.synthetic.emergence import synth_emergence  # noqa: PLC0415

        cube, _, _ = synth_emergence(dt.datetime(2014, 1, 1, tzinfo=dt.UTC), emerging=True, seed=1)
        return (cube[-4:] / 1000.0)[None].astype(np.float32), "synthetic emerging patch (no real one offline)"
    files = sorted((demo_archive_path() / "aia").glob("*.fits"))
    cube = np.stack([read_fits(p).data for p in files]).astype(np.float32)
    return (cube[:, None] / 1000.0)[None], "bundled synthetic AIA 304 jet sequence (no real sequence offline)"


def _semireal_disk() -> np.ndarray:
    import tempfile  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from heliowatch.daemon.service import demo_archive_path  # noqa: PLC0415
    from heliowatch.models.region_detector import detector_input  # noqa: PLC0415
    from heliowatch.models.synthetic.fitsout import write_fits  # noqa: PLC0415
    from heliowatch.models.synthetic.semireal import load_patch, semireal_magnetogram  # noqa: PLC0415
    from heliowatch.pipelines.regions import preprocess  # noqa: PLC0415

    patches = [load_patch(p) for p in sorted((demo_archive_path() / "sharp").glob("*.Br.fits"))]
    data, hdr, _ = semireal_magnetogram(dt.datetime(2015, 3, 1, tzinfo=dt.UTC), patches, np.random.default_rng(0), seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_fits(Path(tmp) / "semireal.fits", data, hdr)
        return detector_input(preprocess(path))[0]
