"""The region models a configuration asks for: the CNN classifier or the rules, the CNN detector or
the physics baseline, each with the description that products carry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from heliowatch.models import registry
from heliowatch.models.core.errors import UsageError
from heliowatch.models.region_detector import detect_cnn
from heliowatch.models.regions.detect import DetectedRegion, detect
from heliowatch.models.regions.frame import Frame
from heliowatch.models.runtime.base import RuntimeOptions
from heliowatch.models.runtime.runtime import Runtime, open_runtime

__all__ = ["Detector", "region_classifier", "region_detector"]

Detector = Callable[[Frame], list[DetectedRegion]]


def _card(name: str, options: RuntimeOptions) -> dict[str, Any]:
    return registry.load_card(name, root=registry.resolve_root(name, options.weights_dirs))


def region_classifier(kind: str, options: RuntimeOptions) -> tuple[Runtime | None, str]:
    """The CNN runtime when asked for and trained, else None (the rules); and a description for products."""
    card = _card("region-classifier", options)
    trained = card.get("training", {}).get("kind", "none") != "none"
    if kind != "cnn" or not trained:
        return None, "rules on field measures (heuristic probabilities)"
    rt = open_runtime("region-classifier", options)
    tag = "synthetic-trained" if card["training"].get("synthetic") else "real-data"
    return rt, f"region-classifier {card['version']} CNN ({tag})"


def region_detector(kind: str, options: RuntimeOptions) -> tuple[Detector, str]:
    """A ``frame -> regions`` detector and its description for products.

    ``cnn`` needs trained region-detector weights; without them this is a
    :class:`~heliowatch.models.core.errors.UsageError`, not a silent fall-back to the baseline.
    """
    if kind != "cnn":
        return detect, "smart-like physics baseline"
    card = _card("region-detector", options)
    if card.get("training", {}).get("kind", "none") == "none":
        msg = "models.region_detector = 'cnn' but the region-detector has no trained weights (heliowatch train region-detector)"
        raise UsageError(msg)
    rt = open_runtime("region-detector", options)
    tag = "synthetic-trained" if card["training"].get("synthetic") else "real-data"

    def run(frame: Frame) -> list[DetectedRegion]:
        return detect_cnn(frame, rt)

    return run, f"region-detector {card['version']} CNN ({tag})"
