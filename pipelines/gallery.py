"""A PNG gallery of the generators, so a solar physicist can judge the realism at a glance.

``heliowatch synth gallery --out docs/gallery`` writes:

- ``fulldisk.png``: a 1024x1024 full disk with one region of each Mt. Wilson class, boxes
  from the ground truth, rotated north up;
- ``classes.png``: a crop of each class;
- ``sharp_vs_real.png``: a synthetic beta-gamma-delta SHARP next to the real HARP 377
  (NOAA 11158) patch at the same scale;
- ``jet_strip.png``: frames of a jet sequence and of a jet-free one;
- ``emergence.png``: an emerging and a control patch over time;
- ``bipoles.png``: bipoles of several radii, fields and separations.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from heliowatch.models.core.figures import new_figure, save_png
from heliowatch.models.synthetic.aia import synth_aia_sequence
from heliowatch.models.synthetic.bipole import synth_bipole
from heliowatch.models.synthetic.emergence import synth_emergence
from heliowatch.models.synthetic.magnetogram import RegionSpec, synth_magnetogram
from heliowatch.models.synthetic.sharp import synth_sharp
from heliowatch.pipelines.fitsio import read_fits
from heliowatch.pipelines.standin.archive import demo_archive_path

__all__ = ["make_gallery"]

_T = dt.datetime(2014, 1, 7, 12, 0, tzinfo=dt.UTC)
_CLASS_POS = [
    ("alpha", 12, -45),
    ("beta", -14, -25),
    ("gamma", 20, -5),
    ("beta-gamma", -18, 12),
    ("beta-delta", 10, 30),
    ("beta-gamma-delta", -12, 48),
    ("gamma-delta", 25, 55),
]


def _mag_ax(ax: Any, img: np.ndarray, title: str, vmax: float = 1000.0) -> Any:
    im = ax.imshow(img, cmap="gray", vmin=-vmax, vmax=vmax, origin="lower", interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def make_gallery(out: Path, *, seed: int = 0) -> list[Path]:
    """Write the gallery PNGs into ``out``; returns their paths."""
    # matplotlib is an optional heavy import: loaded only when drawing.
    from matplotlib.patches import Rectangle  # noqa: PLC0415  (matplotlib: heavy, loaded only when drawing)

    out.mkdir(parents=True, exist_ok=True)
    written = []
    size = 1024
    data, _, truth = synth_magnetogram(_T, [RegionSpec(c, la, lo) for c, la, lo in _CLASS_POS], size=size, seed=seed, crota=0.0)
    fig = new_figure((9, 9), dpi=110)
    ax = fig.subplots()
    im = _mag_ax(ax, data, f'synthetic HMI LOS magnetogram {truth["t_rec"]} (north up, 1024 px, 2.0"/px)')
    for r in truth["regions"]:
        x0, y0, x1, y1 = r["bbox_px"]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="tab:orange", lw=1.2))
        ax.text(x0, y1 + 4, f"{r['mtwilson']}\n{r['usflux_mx']:.1e} Mx", color="tab:orange", fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="B_LOS (G), clipped at +-1000")
    p = out / "fulldisk.png"
    save_png(fig, p, bbox_inches="tight")
    written.append(p)

    fig = new_figure((2.4 * len(truth["regions"]), 2.8), dpi=110)
    axes = fig.subplots(1, len(truth["regions"]))
    for ax, r in zip(axes, truth["regions"], strict=True):
        x0, y0, x1, y1 = r["bbox_px"]
        cx, cy, h = (x0 + x1) // 2, (y0 + y1) // 2, max(x1 - x0, y1 - y0) // 2 + 8
        _mag_ax(ax, data[max(cy - h, 0) : cy + h, max(cx - h, 0) : cx + h], r["mtwilson"], vmax=1500)
    fig.suptitle("one region of each Mt. Wilson class (crops of the full disk; white +, black -)", fontsize=9)
    p = out / "classes.png"
    save_png(fig, p, bbox_inches="tight")
    written.append(p)

    segs, st = synth_sharp(_T, "beta-gamma-delta", -20, 10, seed=seed)
    fig = new_figure((12, 3.6), dpi=110)
    axes = fig.subplots(1, 2)
    _mag_ax(axes[0], segs["Br"][0], f"synthetic SHARP Br, beta-gamma-delta, USFLUX {st['keywords']['USFLUX']:.2e} Mx", 1500)
    try:
        real = read_fits(demo_archive_path() / "sharp" / "hmi.sharp_cea_720s.377.20110215_020000_TAI.Br.fits")
        _mag_ax(axes[1], real.data, f"real SHARP Br, HARP 377 / NOAA 11158, USFLUX {real.keyword('USFLUX'):.2e} Mx", 1500)
    except Exception as e:
        axes[1].set_title(f"real patch unavailable: {e}", fontsize=8)
    fig.suptitle("same plate scale (0.03 deg/px CEA), same colour scale (+-1500 G)", fontsize=9)
    p = out / "sharp_vs_real.png"
    save_png(fig, p, bbox_inches="tight")
    written.append(p)

    try:
        import sunpy.visualization.colormaps as sunpy_cm  # noqa: PLC0415  (imports matplotlib)

        cmap = sunpy_cm.cmlist["sdoaia304"]
    except (ImportError, KeyError):
        cmap = "inferno"
    fig = new_figure((16, 4.6), dpi=100)
    axes = fig.subplots(2, 8)
    for row, jet in enumerate((True, False)):
        cube, _, tr = synth_aia_sequence(_T, jet=jet, seed=seed + 5)
        vmax = float(np.percentile(cube, 99.8))
        for i, k in enumerate(np.linspace(0, len(cube) - 1, 8).astype(int)):
            ax = axes[row, i]
            ax.imshow(cube[k], cmap=cmap, vmin=0, vmax=vmax, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{'jet' if jet else 'no jet'} t={24 * k:d}s", fontsize=8)
            if jet and tr["jet_params"] and k in tr["frames_with_jet"]:
                jp = tr["jet_params"]
                ax.plot(jp["base_x"], jp["base_y"], "c+", ms=8)
    fig.suptitle('AIA 304 A sequences, 166x166 at 1.8"/px (cyan +: jet base from the truth)', fontsize=9)
    p = out / "jet_strip.png"
    save_png(fig, p, bbox_inches="tight")
    written.append(p)

    fig = new_figure((13, 4.8), dpi=100)
    axes = fig.subplots(2, 6)
    for row, em in enumerate((True, False)):
        cube, _, tr = synth_emergence(_T, emerging=em, seed=seed + 2)
        for i, k in enumerate(np.linspace(0, len(cube) - 1, 6).astype(int)):
            _mag_ax(axes[row, i], cube[k], f"{'emerging' if em else 'control'} frame {k}", 300)
    fig.suptitle("pre-emergence patches, 85x85 Postel at 1.4 Mm/px, 30 min cadence (emergence at frame 8)", fontsize=9)
    p = out / "emergence.png"
    save_png(fig, p, bbox_inches="tight")
    written.append(p)

    fig = new_figure((10, 2.8), dpi=100)
    axes = fig.subplots(1, 4)
    for ax, (r, b, d, o) in zip(
        axes,
        [
            (6, 1000, 24, "positive-leading"),
            (10, 1000, 40, "positive-leading"),
            (10, 2500, 40, "negative-leading"),
            (14, 500, 60, "positive-leading"),
        ],
        strict=True,
    ):
        img, _, tr = synth_bipole(radius_px=r, field_g=b, separation_px=d, order=o)
        _mag_ax(ax, img, f"r={r} B={b} d={d}\n{o}, {tr['usflux_mx']:.1e} Mx", 2500)
    p = out / "bipoles.png"
    save_png(fig, p, bbox_inches="tight")
    written.append(p)
    return written
