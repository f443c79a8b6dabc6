"""The products store: one schema for every product, idempotent on natural keys.

Every product (a region detection, a flare forecast, an emergence warning, a jet, a data-health
record) is a row ``(product, key, t_utc, region, payload)`` where ``key`` is the product's
natural key (e.g. the issue time for a full-disk forecast, ``issue|NOAA`` for a region's), so
writing a product twice - a replay, a restart after a crash - leaves one row. SQLite by
default, PostgreSQL by URL (the same tests run on both). Old rows are purged by retention.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from heliowatch.models.core import jsonio
from heliowatch.models.core.times import Clock, SystemClock, iso_utc
from heliowatch.models.core.vocabulary import RecordKind

__all__ = ["PRODUCTS", "ProductStore"]

#: Record kinds, a bounded vocabulary (used as metric labels).
PRODUCTS: tuple[str, ...] = tuple(k.value for k in RecordKind)

_meta = sa.MetaData()
products = sa.Table(
    "products",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("product", sa.String(32), nullable=False),
    sa.Column("key", sa.String(256), nullable=False),
    sa.Column("t_utc", sa.String(32), nullable=False),
    sa.Column("region", sa.String(64), nullable=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_utc", sa.String(32), nullable=False),
    sa.UniqueConstraint("product", "key", name="uq_products_natural"),
)
sa.Index("ix_products_product_t", products.c.product, products.c.t_utc)


class ProductStore:
    """Write and query products.

    Parameters
    ----------
    url_or_engine : str or sqlalchemy.engine.Engine
        Database URL (``sqlite:///...``, ``postgresql+psycopg://...``) or an engine to share
        (the daemon shares the state database's).
    """

    def __init__(self, url_or_engine: str | Engine, *, clock: Clock | None = None) -> None:
        self.engine = sa.create_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        self.clock: Clock = clock or SystemClock()
        _meta.create_all(self.engine)

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()

    def put(self, product: str, key: str, t_utc: str, payload: dict[str, Any], *, region: str | None = None) -> bool:
        """Insert a product once; returns False if ``(product, key)`` was already stored."""
        if product not in PRODUCTS:
            msg = f"unknown product {product!r}; known: {', '.join(PRODUCTS)}"
            raise ValueError(msg)
        row = {
            "product": product,
            "key": key,
            "t_utc": t_utc,
            "region": region,
            "payload": jsonio.dumps(payload, sort_keys=True),
            "created_utc": iso_utc(self.clock.now()),
        }
        with self.engine.begin() as c:
            exists = c.execute(sa.select(products.c.id).where(products.c.product == product, products.c.key == key)).first()
            if exists is not None:
                return False
            try:
                c.execute(products.insert().values(**row))
            except sa.exc.IntegrityError:  # a concurrent writer won the race: still exactly one row
                return False
        return True

    def latest(self, product: str | None = None, *, limit: int = 20, region: str | None = None) -> list[dict[str, Any]]:
        """Newest products first, with their payload decoded."""
        q = sa.select(products).order_by(products.c.t_utc.desc(), products.c.id.desc()).limit(limit)
        if product is not None:
            q = q.where(products.c.product == product)
        if region is not None:
            q = q.where(products.c.region == region)
        with self.engine.connect() as c:
            rows = [dict(r._mapping) for r in c.execute(q)]
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    def counts(self) -> dict[str, int]:
        """Number of stored products per kind."""
        with self.engine.connect() as c:
            return {
                r[0]: int(r[1]) for r in c.execute(sa.select(products.c.product, sa.func.count()).group_by(products.c.product))
            }

    def purge(self, *, older_than_days: float, now: dt.datetime | None = None) -> int:
        """Delete products whose time is older than the retention; returns how many."""
        ref = now or dt.datetime.fromtimestamp(self.clock.now(), dt.UTC)
        cut = (ref - dt.timedelta(days=older_than_days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self.engine.begin() as c:
            return int(c.execute(products.delete().where(products.c.t_utc < cut)).rowcount or 0)
