"""The SHARP-feature flare data set of Sun et al. (2022), with honest flare history.

``../shared/data/sun2022-sharp-seq/sharp_{0..4}.csv``: 64,637 samples of 1,113 HARPs at 96-min
cadence, 5 folds grouped by HARP. Each row is an observation window ``[t_start, t_end]``
(24 h) and ``label`` says whether an M/X flare occurs in the 24 h after ``t_end``.

The ``flares`` and ``FLARE_INDEX`` columns describe that *label* window (``label`` is True
exactly when ``flares`` lists an M or X flare, and ``FLARE_INDEX > 0`` only when ``label``
is True): using them as features leaks the answer. The flare history known at ``t_end`` is
the previous row of the same HARP, the one ending at ``t_end - 24 h``, whose label window
is ``(t_end - 24 h, t_end]``; :func:`add_history` derives it that way.

Even so, history learned here is confounded by the set's sampling: for flaring HARPs it keeps
only the windows leading up to flares, so every one of the 862 rows with an M/X flare in its
previous 24 h is positive. The SHARP models therefore use the keywords alone
(:data:`FEATURES`); the flare-history term is learned from the NOAA region-days, which
sample every region every day (:mod:`heliowatch.models.flares.train`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from heliowatch.models.core.errors import UsageError

__all__ = ["FEATURES", "add_history", "load_sharp_dataset"]

#: Model inputs (after :func:`heliowatch.models.flares.features.transform`): the SHARP keywords.
#: The set's USFLUX and MEANGBZ are the line-of-sight versions (SMARP-compatible USFLUXL and
#: MEANGBL: its MEANGBZ spans 9-43 G/px, the vector MEANGBZ of the same regions ~80-130), so
#: operational inputs are computed on the LOS field (:func:`heliowatch.pipelines.flares.read_sharp_record`).
FEATURES = ["log_usflux", "log_area", "MEANGBZ", "R_VALUE"]


def add_history(df: pd.DataFrame) -> pd.DataFrame:
    """Add flare-history columns from the label windows that ended before each ``t_end``.

    ``hist_mx_24h``: an M/X flare in the previous 24 h; ``hist_mx_72h``: an M/X flare in any
    of the previous three 24-h windows. A HARP with no earlier row has no recorded history (0).
    """
    key = df[["arpnum", "t_end", "label", "FLARE_INDEX"]].copy()
    out = df.copy()
    for days, suffix in ((1, "24h"), (2, "48h"), (3, "72h")):
        prev = key.rename(columns={"label": f"mx_{suffix}", "FLARE_INDEX": f"idx_{suffix}"})
        prev["t_end"] = prev["t_end"] + pd.Timedelta(days=days)
        out = out.merge(prev.drop_duplicates(["arpnum", "t_end"]), on=["arpnum", "t_end"], how="left")
    out["hist_mx_24h"] = out["mx_24h"].fillna(False).astype(float)
    out["hist_mx_72h"] = out[["mx_24h", "mx_48h", "mx_72h"]].fillna(False).astype(bool).any(axis=1).astype(float)
    return out.drop(columns=[c for c in out.columns if c.startswith(("mx_", "idx_"))])


def load_sharp_dataset(data_dir: Path) -> pd.DataFrame:
    """All five folds with a ``fold`` column, parsed times and history features.

    Raises
    ------
    UsageError
        If the directory does not hold ``sharp_0.csv`` .. ``sharp_4.csv``.
    """
    frames = []
    for i in range(5):
        p = Path(data_dir) / f"sharp_{i}.csv"
        if not p.exists():
            msg = f"{data_dir} is not the Sun et al. (2022) SHARP data set: {p.name} is missing"
            raise UsageError(msg)
        frames.append(pd.read_csv(p).assign(fold=i))
    df = pd.concat(frames, ignore_index=True)
    need = {"arpnum", "t_end", "label", "FLARE_INDEX", "AREA", "USFLUX", "MEANGBZ", "R_VALUE"}
    missing = need - set(df.columns)
    if missing:
        msg = f"{data_dir}: columns {sorted(missing)} are missing"
        raise UsageError(msg)
    df["t_end"] = pd.to_datetime(df["t_end"])
    df["label"] = df["label"].astype(bool)
    df = add_history(df)
    return df.replace([np.inf, -np.inf], np.nan)
