"""Real inputs for the backend parity checks, from the bundled archive where real data exist.

- flare CNNs: the real SHARP LOS magnetogram of HARP 377 (NOAA 11158) from the bundled
  archive, binned 2x2 to 0.06 deg/px (an integer factor, no resampling), in kG, centred in
  the 256x512 canvas with zero padding; southern regions are flipped north-south and in sign
  (hemisphere normalisation);
- region classifier: the real SHARP Br of HARP 377, binned 4x (0.12 deg/px ~ 2"/px);
- region detector: a semi-real full disk, the bundled real SHARP patches placed on a synthetic
  quiet Sun;
- emergence FCN: the average of a synthetic emerging-patch sequence (no real tracked patches
  are available offline);
- jet models: the bundled synthetic AIA 304 jet sequence (no real AIA sequences offline), as
  normalised tiles (encoder, full model) or the encoder's features of it (head).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from heliowatch.models import registry
from heliowatch.models.flares.cnn import pad_to_canvas
from heliowatch.models.measures import bin_mean
from heliowatch.models.region_cnn import crop
from heliowatch.models.region_detector import detector_input
from heliowatch.models.regions.frame import prepare_disk
from heliowatch.models.synthetic.emergence import synth_emergence
from heliowatch.models.synthetic.fitsout import roundtrip_image
from heliowatch.models.synthetic.semireal import load_patch, semireal_magnetogram
from heliowatch.pipelines.fitsio import read_fits
from heliowatch.pipelines.standin.archive import demo_archive_path

__all__ = ["real_inputs"]

_HARP377 = "hmi.sharp_cea_720s.377.20110215_020000_TAI"


def real_inputs(name: str) -> tuple[np.ndarray, str]:
    """One real (or, where none exists offline, bundled synthetic) input and its description."""
    spec = registry.get(name)
    sharp = demo_archive_path() / "sharp"
    if name.startswith("flare"):
        f = read_fits(sharp / f"{_HARP377}.magnetogram.fits")
        d = bin_mean(np.nan_to_num(f.data.astype(np.float64)), 2)
        if (f.keyword("LAT_FWT") or 0) < 0:
            d = -d[::-1]  # hemisphere normalisation, as the flare CNNs' inputs
        x = pad_to_canvas(d / 1000.0, (spec.example_shape[2], spec.example_shape[3]))
        return x[None, None].astype(np.float32), "real SHARP LOS, HARP 377 (NOAA 11158) 2011-02-15 02:00 TAI"
    if name == "region-classifier":
        f = read_fits(sharp / f"{_HARP377}.Br.fits")
        d = bin_mean(np.nan_to_num(f.data.astype(np.float64)), 4)
        # CEA rows increase with latitude, as in the north-up full-disk frames; 0.12 deg/px ~ 2"/px.
        c = crop(d, d.shape[0] / 2, d.shape[1] / 2, float(f.keyword("LAT_FWT") or 0))
        return c[None, None], "real SHARP Br, HARP 377 (NOAA 11158), binned 4x"
    if name == "region-detector":
        patches = [load_patch(p) for p in sorted(sharp.glob("*.Br.fits"))]
        data, hdr, _ = semireal_magnetogram(dt.datetime(2015, 3, 1, tzinfo=dt.UTC), patches, np.random.default_rng(0), seed=0)
        x = detector_input(prepare_disk(roundtrip_image(data, hdr), name="semireal"))[0]
        return x, "semi-real full disk: the bundled real SHARP patches (HARP 377, 7115) on a synthetic quiet Sun"
    if name.startswith("emergence"):
        # The FCN reads one window average (kG): the mean of the synthetic sequence stands for it.
        cube, _, _ = synth_emergence(dt.datetime(2014, 1, 1, tzinfo=dt.UTC), emerging=True, seed=1)
        x = (cube.mean(axis=0) / 1000.0)[None, None].astype(np.float32)
        return x, "synthetic emerging patch, averaged (no real one offline)"
    files = sorted((demo_archive_path() / "aia").glob("*.fits"))
    cube = np.stack([read_fits(p).data for p in files]).astype(np.float32)
    # The jet models read normalised tiles (encoder, full model) or the encoder's features (head).
    from heliowatch.models.jets.parity import parity_input  # noqa: PLC0415  (imports torch: optional heavy backend)

    return parity_input(name, cube), "bundled synthetic AIA 304 jet sequence (no real sequence offline)"
