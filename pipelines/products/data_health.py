"""The data-health product: one record per ingested record (series, latency, QUALITY), for every source."""

from __future__ import annotations

from collections.abc import Sequence

from heliowatch.models.core.vocabulary import SOURCE_KINDS, ProductKind, RecordKind
from heliowatch.pipelines.frames import VerifiedFrame
from heliowatch.pipelines.products.base import Batch, ProductRecord

__all__ = ["DataHealthProduct"]


class DataHealthProduct:
    """What arrived, how late, with which QUALITY word."""

    name = ProductKind.DATA_HEALTH.value
    consumes = frozenset(SOURCE_KINDS)

    def process(self, frames: Sequence[VerifiedFrame]) -> Batch:
        """One ``data_health`` record per frame."""
        return Batch(
            records=[
                ProductRecord(
                    RecordKind.DATA_HEALTH.value,
                    f"{fr.source.name}|{fr.record.name}",
                    fr.record.t_rec_utc,
                    {"series": fr.source.name, "record": fr.record.name, "latency_s": fr.latency_s, "quality": fr.record.quality},
                )
                for fr in frames
            ]
        )
