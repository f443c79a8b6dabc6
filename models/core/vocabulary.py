"""The shared vocabulary: Mt. Wilson classes, source kinds and product kinds.

These are bounded sets (they appear in metric labels, store rows and file names), so they
are spelled once, here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

__all__ = [
    "CLASS_OUTCOMES",
    "MTWILSON_CLASSES",
    "SOURCE_KINDS",
    "ClassOutcome",
    "MtWilson",
    "ProductKind",
    "RecordKind",
    "SourceKind",
]

#: Mt. Wilson magnetic classes, as NOAA's SRS spells them (lower case).
MtWilson = Literal["alpha", "beta", "gamma", "beta-gamma", "delta", "beta-delta", "beta-gamma-delta", "gamma-delta"]
MTWILSON_CLASSES: tuple[str, ...] = get_args(MtWilson)

#: What a Mt. Wilson classification came to: a class, or none because the region is no spot group
#: (spotless plage, nothing NOAA would number) or lies beyond the limb guard. Only "classified"
#: carries a class; the others leave ``mtwilson`` null (empty inside the daemon).
ClassOutcome = Literal["classified", "no-spot-group", "limb"]
CLASS_OUTCOMES: tuple[str, ...] = get_args(ClassOutcome)

#: The kinds of JSOC series heliowatch polls.
SourceKind = Literal["magnetogram", "sharp", "aia"]
SOURCE_KINDS: tuple[str, ...] = get_args(SourceKind)


class ProductKind(StrEnum):
    """The products (each turns frames of the kinds it consumes into records, files and alerts)."""

    REGIONS = "regions"
    FLARES = "flares"
    JETS = "jets"
    EMERGENCE = "emergence"
    DATA_HEALTH = "data_health"


class RecordKind(StrEnum):
    """The kinds of rows in the products store (a product may write several kinds)."""

    REGION = "region"
    FLARE_FORECAST = "flare_forecast"
    FLARE_REGION = "flare_region"
    EMERGENCE = "emergence"
    EMERGENCE_WARNING = "emergence_warning"
    JET = "jet"
    DATA_HEALTH = "data_health"
