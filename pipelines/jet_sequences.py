"""Jets in a sequence of 304 A files of any field of view (``heliowatch jets``, the evaluations).

The files are read and calibrated like the daemon's frames
(:mod:`heliowatch.pipelines.aia_calibration`), except that movie frames with rendered display
levels are accepted: such a sequence is put on a DN/s-like scale by one robust affine map for
the whole sequence (:func:`heliowatch.models.jets.frames.robust_normalise`), never frame by
frame. The window spacing follows the sequence's own cadence when it is slower than 24 s (the
Solar Jet Hunter movies are 24-36 s apart), and sequences shorter than 30 frames (down to 10
for the network) are accepted and flagged ``short``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.times import iso_from_unix
from heliowatch.models.jets.events import JetEvent
from heliowatch.models.jets.frames import PooledFrame, robust_normalise
from heliowatch.models.jets.stream import JetStream, StreamParams
from heliowatch.pipelines.aia_calibration import Calibrated, CalibrationTables, calibrate
from heliowatch.pipelines.errors import DataRejected
from heliowatch.pipelines.fitsio import read_fits

__all__ = ["SequenceResult", "analyse_sequence", "sequence_files"]

#: The fewest frames the baseline accepts.
MIN_FRAMES_BASELINE = 3


@dataclasses.dataclass
class SequenceResult:
    """What ``heliowatch jets`` reports of one sequence."""

    events: list[JetEvent]
    windows: list[dict[str, Any]]
    frames: list[PooledFrame]
    rejected: list[dict[str, str]]
    flags: list[str]
    spacing_s: float
    tiles: list[dict[str, Any]]

    def as_json(self, *, model: dict[str, Any]) -> dict[str, Any]:
        """The JSON contract of ``heliowatch jets --json`` (DESIGN.md)."""
        return {
            "events": [_event_json(e) for e in self.events],
            "windows": self.windows,
            "tiles": self.tiles,
            "frames": len(self.frames),
            "spacing_s": self.spacing_s,
            "flags": self.flags,
            "rejected": self.rejected,
            "model": model,
        }


def _event_json(e: JetEvent) -> dict[str, Any]:
    d = e.as_dict()
    keep = (
        "start_utc",
        "peak_utc",
        "end_utc",
        "base_hpc_arcsec",
        "hgs_lat",
        "hgs_lon",
        "carrington_lon",
        "direction_deg",
        "length_arcsec",
        "speed_km_s",
        "probability",
        "detector",
        "degraded",
        "key",
        "n_detections",
    )
    return {k: d[k] for k in keep if k in d}


def sequence_files(inputs: Sequence[str | Path]) -> list[Path]:
    """The FITS files named (a directory stands for the ``*.fits`` / ``*.fits.gz`` it holds), sorted by name.

    Raises
    ------
    UsageError
        If a path does not exist or nothing is found.
    """
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted([*p.glob("*.fits"), *p.glob("*.fits.gz"), *p.glob("*.fts")])
        elif p.exists():
            out.append(p)
        else:
            msg = f"{p} does not exist"
            raise UsageError(msg)
    if not out:
        msg = f"no FITS files in {', '.join(map(str, inputs))}"
        raise UsageError(msg)
    return out


def analyse_sequence(
    files: Sequence[Path],
    *,
    encoder: Callable[[np.ndarray], np.ndarray] | None = None,
    head: Callable[[np.ndarray], np.ndarray] | None = None,
    threshold: float = 0.5,
    use_baseline: bool = True,
    tables: CalibrationTables | None = None,
    min_frames: int = 10,
    network_alone_min_p: float = 0.99,
    network_max_windows: int = 40,
) -> SequenceResult:
    """Calibrate a sequence of 304 A files and run the jet detectors over it.

    Raises
    ------
    UsageError
        If fewer than 3 frames are usable, or the frames do not share one field of view.
    """
    cals: list[Calibrated] = []
    rejected: list[dict[str, str]] = []
    for f in files:
        try:
            cals.append(calibrate(read_fits(f), tables=tables, allow_rendered=True))
        except DataRejected as e:
            rejected.append({"file": str(f), "reason": e.reason, "error": str(e)})
    if len(cals) < MIN_FRAMES_BASELINE:
        why = "; ".join(r["error"] for r in rejected[:3])
        msg = f"{len(cals)} usable 304 A frame(s) of {len(files)}: at least {MIN_FRAMES_BASELINE} needed" + (
            f" ({why})" if why else ""
        )
        raise UsageError(msg)
    cals.sort(key=lambda c: c.frame.t_unix)
    shapes = {c.frame.shape for c in cals}
    if len(shapes) > 1:
        msg = f"the frames have different shapes {sorted(shapes)}: one field of view per sequence"
        raise UsageError(msg)
    frames = [c.frame for c in cals]
    flags: list[str] = []
    if any("rendered" in f.flags for f in frames):
        cube = robust_normalise(np.stack([f.data for f in frames]))
        frames = [dataclasses.replace(f, data=cube[k]) for k, f in enumerate(frames)]
        flags.append("rendered levels: normalised robustly over the sequence")
    dts = np.diff([f.t_unix for f in frames])
    cadence = float(np.median(dts)) if dts.size else 24.0
    # Windows of consecutive frames when the sequence is sparser than 24 s (never sparser than it is).
    spacing = 24.0 if cadence <= 24.0 * 1.25 else cadence
    n_slots = round((frames[-1].t_unix - frames[0].t_unix) / spacing) + 1
    if n_slots < 30:
        flags.append(f"short: {n_slots} window frames {spacing:.0f} s apart (30 nominal)")
    if not math.isclose(spacing, 24.0):
        flags.append(f"cadence {cadence:.0f} s: windows of frames {spacing:.0f} s apart (the network was trained at 24 s)")
    params = StreamParams(
        spacing_s=spacing,
        min_frames=min(min_frames, 30),
        threshold=threshold,
        close_after_s=max(150.0, 4 * spacing),
        network_alone_min_p=network_alone_min_p,
        network_max_windows=network_max_windows,
    )
    stream = JetStream(params, encoder=encoder, head=head, use_baseline=use_baseline)
    events: list[JetEvent] = []
    windows: list[dict[str, Any]] = []
    for cal, fr in zip(cals, frames, strict=True):
        for res in stream.push(fr, degraded=cal.degraded):
            events += [e for e, _ in res.events]
            if res.window is not None:
                w = res.window
                windows.append(
                    {
                        "t_end_utc": iso_from_unix(res.t_unix),
                        "n_frames": int(w.n_frames),
                        "n_filled": int(w.n_filled),
                        "short": bool(w.short),
                        "ready": bool(w.ready),
                        "reason": w.reason,
                        "degraded": bool(w.degraded),
                        "probabilities": [round(float(p), 4) for p in res.probabilities]
                        if res.probabilities is not None
                        else None,
                    }
                )
    for res in stream.finish():
        events += [e for e, _ in res.events]
    if encoder is None:
        windows = []
    grid = stream.grid
    tiles = (
        [
            {"index": t.index, "centre_hpc_arcsec": [round(t.centre_hpc[0], 1), round(t.centre_hpc[1], 1)], "kind": t.kind}
            for t in grid.tiles
        ]
        if grid is not None
        else []
    )
    if encoder is not None and len(frames) < params.min_frames:
        flags.append(f"no network probability: {len(frames)} frames, {params.min_frames} needed")
    # A frame that is not on the sequence's sky grid (offsets of half a pixel and more) restarts the detectors.
    if stream.resets:
        flags.append(f"the field of view moved {stream.resets} time(s): detectors restarted")
    return SequenceResult(sorted(events, key=lambda e: e.start_utc), windows, frames, rejected, flags, spacing, tiles)
