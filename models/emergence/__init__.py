"""Flux-emergence forecasting on tracked full-disk patches (seed: Dhuri, Hanasoge, Birch & Schunker 2020, ApJ 903:27).

The chain the product runs, frame by frame:

1. :mod:`~heliowatch.models.emergence.patches`: one full-resolution HMI LOS frame -> every usable
   85x85 Postel patch at 1.4 Mm/px of a Carrington grid (exact geometry, one resampling);
2. :mod:`~heliowatch.models.emergence.averaging`: running 410-min averages every 320 min per
   patch (missing frames counted, long gaps restart with a flag);
3. :mod:`~heliowatch.models.emergence.forecast`: each finished window -> P(emergence within
   24 h) from the seed FCN (:mod:`~heliowatch.models.emergence.network`, served by the runtime as
   ``emergence-fcn``) and from the MTOT baseline (:mod:`~heliowatch.models.emergence.mtot`).

Training, evaluation and interpretation (torch): :mod:`~heliowatch.models.emergence.train`,
:mod:`~heliowatch.models.emergence.evaluate`, :mod:`~heliowatch.models.emergence.interpret`.
This package module imports none of the torch modules.
"""

from heliowatch.models.emergence.averaging import AveragerStep, AveragingConfig, PatchAverager, WindowAverage
from heliowatch.models.emergence.forecast import EmergenceForecaster, PatchForecast, fcn_input, rebase
from heliowatch.models.emergence.mtot import MtotClassifier, central_flux_mx, mtot_features
from heliowatch.models.emergence.patches import DiskWCS, PatchGrid, PatchSet, extract_patches, parse_patch_id, patch_id

__all__ = [
    "AveragerStep",
    "AveragingConfig",
    "DiskWCS",
    "EmergenceForecaster",
    "MtotClassifier",
    "PatchAverager",
    "PatchForecast",
    "PatchGrid",
    "PatchSet",
    "WindowAverage",
    "central_flux_mx",
    "extract_patches",
    "fcn_input",
    "mtot_features",
    "parse_patch_id",
    "patch_id",
    "rebase",
]
