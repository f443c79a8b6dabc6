"""Alert rules: which products raise which alerts (thresholds from ``[alerts.rules]``)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from heliowatch.pipelines.alerts import Alert

__all__ = ["Rules"]


def _num(v: Any, fmt: str) -> str:
    return format(float(v), fmt) if isinstance(v, int | float) and v == v else "n/a"


def _region_name(noaa: int | None, harp: int | None) -> str:
    return f"NOAA {noaa}" if noaa else (f"HARP {harp}" if harp else "unnumbered region")


@dataclass(frozen=True)
class Rules:
    """Thresholds; a threshold above 1 (or 0 minutes) disables its rule."""

    flare_region_m: float = 0.5
    flare_full_disk_m: float = 0.8
    new_delta_region: bool = True
    jet: float = 0.5
    emergence: float = 0.5
    data_stale_minutes: float = 180.0

    def flare_alerts(self, fd: Any) -> list[Alert]:
        """Alerts from a full-disk flare issue (a FullDiskForecast)."""
        out = []
        for r in fd.regions:
            if r.p_m >= self.flare_region_m:
                name = _region_name(r.noaa_ar, r.harpnum)
                where = f" at HGS {r.hgs_lat:+.0f} {r.hgs_lon:+.0f}" if r.hgs_lat is not None and r.hgs_lon is not None else ""
                text = (
                    f"{name}{where}: P(>=M) = {r.p_m:.2f}, P(>=X) = {r.p_x:.2f}, P(>=C) = {r.p_c:.2f}\n"
                    f"window {fd.start_window} .. {fd.end_window}\n"
                    f"method: {r.method}{' (degraded: ' + '; '.join(r.missing) + ')' if r.degraded else ''}\n"
                    f"models: {', '.join(m['name'] + ' ' + m['version'] for m in r.models)}"
                )
                out.append(
                    Alert(
                        "flare_region",
                        f"[heliowatch] {name}: P(>=M flare in 24 h) = {r.p_m:.2f}",
                        text,
                        region=name,
                        attachments=(r.occlusion_png,) if r.occlusion_png else (),
                    )
                )
        if fd.p_m >= self.flare_full_disk_m:
            out.append(
                Alert(
                    "flare_full_disk",
                    f"[heliowatch] full disk: P(>=M flare in 24 h) = {fd.p_m:.2f}",
                    f"Full-disk P(>=M) = {fd.p_m:.2f} (P(>=X) = {fd.p_x:.2f}) for {fd.start_window} .. {fd.end_window};"
                    f" {len(fd.regions)} region(s), limb term {fd.p_limb_m:.2f}.",
                )
            )
        return out

    def region_alerts(self, product: dict[str, Any], previous_class: str | None) -> list[Alert]:
        """A region product that has newly become delta-class."""
        cls = str(product.get("mtwilson") or "")  # None: no class (no spot group, limb)
        if self.new_delta_region and "delta" in cls and "delta" not in str(previous_class or ""):
            name = (
                _region_name(product.get("noaa_ar"), product.get("harpnum"))
                if product.get("noaa_ar")
                else f"region {product.get('id')}"
            )
            return [
                Alert(
                    "new_delta",
                    f"[heliowatch] {name} is now {cls}",
                    f"{name} classified {cls} (confidence {product.get('confidence', float('nan')):.2f});"
                    f" previously {previous_class or 'not delta'}. Classifier: {product.get('model', 'unknown')}.",
                    region=name,
                    attachments=tuple(p for p in [product.get("quicklook_png")] if p),
                )
            ]
        return []

    def jet_alerts(self, product: dict[str, Any]) -> list[Alert]:
        """A coronal jet confirmed (or ended unannounced): one alert per location and window."""
        p = float(product.get("probability", 0))
        if p < self.jet:
            return []
        bx, by = product.get("base_hpc_arcsec") or (0.0, 0.0)
        # The location bucket: 100" cells, so repeated jets from one place are one alert per window.
        cell = f"{round(bx / 100) * 100:+d},{round(by / 100) * 100:+d}"
        speed = product.get("speed_km_s")
        lines = [
            f"Coronal jet {'(still going on) ' if product.get('provisional') else ''}first seen {product.get('start_utc')},"
            f" peak {product.get('peak_utc')}, last seen {product.get('end_utc')}.",
            f'Base: {product.get("position", "?")} (helioprojective {bx:+.0f}", {by:+.0f}"),'
            f" Carrington longitude {_num(product.get('carrington_lon'), '.1f')}.",
            f'Direction PA {_num(product.get("direction_deg"), ".0f")} deg, length {_num(product.get("length_arcsec"), ".0f")}",'
            f" plane-of-sky speed {_num(speed, '.0f')} km/s.",
            f"Probability {p:.2f}, detectors: {product.get('detector') or '+'.join(product.get('detectors', []))}"
            f"{'; degraded input' if product.get('degraded') else ''}.",
        ]
        if product.get("synthetic_model"):
            lines.append("The network was trained on synthetic data: its real skill is unknown (see its model card).")
        return [
            Alert(
                "jet",
                f"[heliowatch] coronal jet at {product.get('position', '?')}, P = {p:.2f}, {str(product.get('start_utc'))[:16]}Z",
                "\n".join(lines),
                region=f"jet {cell}",
                attachments=tuple(x for x in [product.get("strip_png")] if x),
            )
        ]

    def emergence_alerts(self, product: dict[str, Any]) -> list[Alert]:
        """A pre-emergence warning: one alert per place (a 10-deg Carrington cell) and UTC day."""
        p = float(product.get("probability", 0))
        if p < self.emergence:
            return []
        lat, lon = product.get("hgs_lat"), product.get("carrington_lon")
        cell = (
            f"C{math.floor(float(lon) / 10 + 0.5) * 10 % 360:03d} {math.floor(float(lat) / 10 + 0.5) * 10:+d}"
            if isinstance(lat, int | float) and isinstance(lon, int | float)
            else str(product.get("position", "?"))
        )
        w = product.get("window") or {}
        lines = [
            f"Flux emergence expected within 24 h at {product.get('position', '?')} (patch {product.get('patch_id', '?')}).",
            f"P = {p:.2f} by {product.get('method', '?')} (threshold {_num(product.get('threshold'), '.2f')});"
            f" FCN {_num(product.get('p_fcn'), '.2f')}, unsigned-flux discriminant {_num(product.get('p_mtot'), '.2f')}.",
            f"Lead-time class: {product.get('lead_time_class', '?')}. Averaging window {w.get('start_utc', '?')}"
            f" .. {w.get('end_utc', '?')} ({w.get('frames', '?')} of {w.get('expected', '?')} frames).",
            "No region NOAA has numbered and no HARP there; nothing was there when the averaging window began.",
        ]
        if product.get("degraded"):
            lines.append("Degraded input: " + "; ".join(product.get("degraded_reasons") or ["see the record"]) + ".")
        if product.get("synthetic_model"):
            lines.append(
                "The classifiers were trained on synthetic and semi-real data:"
                " their real skill is unknown (docs/eval/emergence.md)."
            )
        if product.get("map_png"):
            lines.append(f"Map: {product['map_png']}")
        return [
            Alert(
                "emergence",
                f"[heliowatch] flux emergence expected at {product.get('position', '?')}, P = {p:.2f}",
                "\n".join(lines),
                region=f"emergence {cell}",
                attachments=tuple(x for x in [product.get("map_png")] if x),
            )
        ]

    def stale_alerts(self, last: dict[str, float], now: dt.datetime) -> list[Alert]:
        """Series whose newest record is older than the limit."""
        if self.data_stale_minutes <= 0:
            return []
        out = []
        for series, t in last.items():
            age_min = (now.timestamp() - t) / 60
            if age_min > self.data_stale_minutes:
                out.append(
                    Alert(
                        "data_stale",
                        f"[heliowatch] no new {series} data for {age_min / 60:.1f} h",
                        f"The newest {series} record is from {dt.datetime.fromtimestamp(t, dt.UTC):%Y-%m-%d %H:%M} UTC,"
                        f" {age_min:.0f} minutes ago (limit {self.data_stale_minutes:.0f}). The JSOC may be late or down.",
                        key=series,
                    )
                )
        return out
