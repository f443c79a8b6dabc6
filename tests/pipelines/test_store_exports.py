"""Products store (SQLite, and PostgreSQL where CI provides it). HEK/VOEvent: test_community_formats.py."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from heliowatch.pipelines.store.products import ProductStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'p.sqlite'}"
    url: str = request.getfixturevalue("pg_url")
    import sqlalchemy as sa

    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.execute(sa.text("DROP TABLE IF EXISTS products"))
    eng.dispose()
    return url


def test_store_is_idempotent_and_queryable(store_url: str) -> None:
    s = ProductStore(store_url)
    try:
        _exercise_store(s)
    finally:
        s.close()


def _exercise_store(s: ProductStore) -> None:
    payload = {"p_m": 0.89, "noaa_ar": 11158}
    assert s.put("flare_region", "2011-02-15T01:59:26Z|NOAA 11158", "2011-02-15T01:59:26Z", payload, region="NOAA 11158")
    assert not s.put("flare_region", "2011-02-15T01:59:26Z|NOAA 11158", "2011-02-15T01:59:26Z", {"p_m": 0.1})  # replay: no-op
    s.put("flare_region", "2011-02-16T01:59:26Z|NOAA 11158", "2011-02-16T01:59:26Z", {"p_m": 0.7}, region="NOAA 11158")
    s.put("jet", "2011-02-15T02:00:00Z", "2011-02-15T02:00:00Z", {"probability": 0.9})
    latest = s.latest("flare_region", region="NOAA 11158")
    assert [r["payload"]["p_m"] for r in latest] == [0.7, 0.89]
    assert s.counts() == {"flare_region": 2, "jet": 1}
    assert s.purge(older_than_days=1, now=dt.datetime(2011, 2, 16, 12, tzinfo=dt.UTC)) == 2
    assert s.counts() == {"flare_region": 1}
    with pytest.raises(ValueError, match="unknown product"):
        s.put("weather", "k", "t", {})


def test_state_database_runs_on_postgresql_too(pg_url: str) -> None:
    from heliowatch.daemon.state import StateStore
    from heliowatch.pipelines.ingest import FrameRecord

    st = StateStore(pg_url)
    import sqlalchemy as sa

    try:
        with st.engine.begin() as c:
            for t in ("frames", "high_water", "rejects", "processed", "product_state", "product_attempts"):
                c.execute(sa.text(f"DELETE FROM {t}"))
        rec = FrameRecord("hmi.M_720s_nrt", "r1", "magnetogram", "2024-05-10T00:00:00.000Z", 0, "/x", 10, "0" * 64)
        assert st.record_frames([rec]) == 1 and st.record_frames([rec]) == 0
        assert st.high_water("hmi.M_720s_nrt")[0] == "2024-05-10T00:00:00.000Z"
        st.mark_processed("p", ["k"], state={"ring": [1, 2]})
        st.mark_processed("p", ["k", "k2"], state={"ring": [2, 3]})
        assert st.is_processed("p", "k") and st.is_processed("p", "k2") and not st.is_processed("p", "k3")
        assert st.done_among("p", ["k", "k2", "k3"]) == {"k", "k2"}
        assert st.load_state("p") == {"ring": [2, 3]} and st.load_state("p", scope="backfill") is None
        with st.engine.connect() as c:
            assert c.execute(sa.text("SELECT count(*) FROM processed WHERE product = 'p'")).scalar() == 2
    finally:
        st.close()
