"""Pictures of a jet: a movie strip (PNG), an animated GIF and a base-difference overview.

All three are drawn from the :class:`~heliowatch.models.jets.stream.EventCutout` of the event
(300" around its base, frames 24 s apart). Intensities are shown on one square-root scale for
the whole event (a per-frame scale would hide the brightening that makes the jet), north up,
solar west to the right, axes in helioprojective arcsec.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw

from heliowatch.models.core.figures import new_figure, png_bytes
from heliowatch.models.core.times import iso_from_unix, unix_from_iso
from heliowatch.models.jets.events import JetEvent
from heliowatch.models.jets.stream import EventCutout

__all__ = ["gif_bytes", "overview_png", "strip_png"]

_STRIP_FRAMES = 8


def _scale(cube: np.ndarray) -> tuple[float, float]:
    finite = cube[np.isfinite(cube)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [1.0, 99.7])
    return float(lo), float(max(hi, lo + 1e-6))


def _grey(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    x = np.clip((np.nan_to_num(img, nan=lo) - lo) / (hi - lo), 0, 1)
    return np.sqrt(x)


def _pick(n: int, peak: int, k: int = _STRIP_FRAMES) -> list[int]:
    """``k`` frame indices spread evenly over the event, the peak among them."""
    if n <= k:
        return list(range(n))
    idx = set(np.linspace(0, n - 1, k).round().astype(int).tolist())
    if peak not in idx:
        idx.discard(min(idx, key=lambda i: abs(i - peak)))
        idx.add(peak)
    return sorted(idx)


def _peak_index(cut: EventCutout, ev: JetEvent) -> int:
    t_peak = unix_from_iso(ev.peak_utc)
    return int(np.argmin(np.abs(cut.times - t_peak)))


def _title(ev: JetEvent) -> str:
    where = (
        f"HGS {ev.hgs_lat:+.1f} {ev.hgs_lon:+.1f}"
        if math.isfinite(ev.hgs_lat) and math.isfinite(ev.hgs_lon)
        else f'limb, ({ev.base_hpc_arcsec[0]:+.0f}", {ev.base_hpc_arcsec[1]:+.0f}")'
    )
    return f"Coronal jet {ev.start_utc[:19]}Z, {where}, P = {ev.probability:.2f} ({'+'.join(ev.detectors)})"


def strip_png(cut: EventCutout, ev: JetEvent, *, synthetic_model: bool = False) -> bytes:
    """Up to 8 frames across the event (the peak among them), side by side, with their times."""
    idx = _pick(len(cut.frames), _peak_index(cut, ev))
    lo, hi = _scale(cut.frames)
    n = len(idx)
    fig = new_figure((2.0 * max(n, 4) + 0.4, 2.7), dpi=100)
    x0, x1, y0, y1 = cut.extent_hpc
    width = 2.0 * max(n, 4) + 0.4
    for k, i in enumerate(idx):
        ax = fig.add_axes(((0.2 + 2.0 * k) / width, 0.08, 1.9 / width, 0.74))
        ax.imshow(_grey(cut.frames[i], lo, hi), origin="lower", cmap="afmhot", extent=(x0, x1, y0, y1), vmin=0, vmax=1)
        ax.plot([ev.base_hpc_arcsec[0]], [ev.base_hpc_arcsec[1]], marker="+", color="cyan", ms=8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(iso_from_unix(float(cut.times[i]))[11:19] + (" (peak)" if i == _peak_index(cut, ev) else ""), fontsize=8)
    note = "  [model trained on synthetic data]" if synthetic_model else ""
    fig.suptitle(_title(ev) + note, fontsize=9)
    return png_bytes(fig)


def overview_png(cut: EventCutout, ev: JetEvent, *, synthetic_model: bool = False) -> bytes:
    """The peak frame minus the last frame before the jet, with the base, axis and length drawn."""
    i = _peak_index(cut, ev)
    ref = cut.reference if cut.reference is not None else cut.frames[0]
    diff = cut.frames[i] - ref
    finite = diff[np.isfinite(diff)]
    v = float(np.percentile(np.abs(finite), 99.5)) if finite.size else 1.0
    fig = new_figure((5.2, 4.6), dpi=100)
    ax = fig.add_axes((0.14, 0.1, 0.72, 0.78))
    x0, x1, y0, y1 = cut.extent_hpc
    im = ax.imshow(diff, origin="lower", cmap="RdBu_r", vmin=-v, vmax=v, extent=(x0, x1, y0, y1))
    bx, by = ev.base_hpc_arcsec
    pa = math.radians(ev.direction_deg)
    if ev.length_arcsec > 0:
        ax.annotate(
            "",
            xy=(bx - math.sin(pa) * ev.length_arcsec, by + math.cos(pa) * ev.length_arcsec),
            xytext=(bx, by),
            arrowprops={"arrowstyle": "->", "color": "k", "lw": 1.2},
        )
    ax.plot([bx], [by], marker="o", mfc="none", color="k", ms=9)
    ax.set_xlabel("Solar X (arcsec)")
    ax.set_ylabel("Solar Y (arcsec)")
    speed = f"{ev.speed_km_s:.0f} km/s" if ev.speed_km_s is not None else "speed n/a"
    ax.set_title(
        f"base difference {iso_from_unix(float(cut.times[i]))[11:19]} - pre-event\n"
        f'PA {ev.direction_deg:.0f} deg, length {ev.length_arcsec:.0f}", {speed}'
        + (" [synthetic-trained model]" if synthetic_model else ""),
        fontsize=8,
    )
    cax = fig.add_axes((0.88, 0.1, 0.03, 0.78))
    fig.colorbar(im, cax=cax, label="DN/s")
    return png_bytes(fig)


def gif_bytes(cut: EventCutout, ev: JetEvent, *, frame_ms: int = 250, max_side: int = 332) -> bytes:
    """Every frame of the event as an animated GIF (upscaled to ``max_side``, time stamped, looping)."""
    lo, hi = _scale(cut.frames)
    peak = _peak_index(cut, ev)
    images = []
    for k, (img, t) in enumerate(zip(cut.frames, cut.times, strict=True)):
        g = (_grey(img, lo, hi)[::-1] * 255).astype(np.uint8)  # GIF rows run north to south
        im = Image.fromarray(g, mode="L")
        scale = max(1, max_side // max(im.size))
        im = im.resize((im.size[0] * scale, im.size[1] * scale), Image.Resampling.NEAREST).convert("P")
        draw = ImageDraw.Draw(im)
        draw.text((4, 4), iso_from_unix(float(t))[11:19] + (" peak" if k == peak else ""), fill=255)
        images.append(im)
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return buf.getvalue()
