"""Murphy's (1973) Brier score decomposition."""

from __future__ import annotations

import numpy as np
import pytest

from heliowatch.models import skill


def test_terms_add_up_to_the_brier_score_on_binned_forecasts() -> None:
    rng = np.random.default_rng(3)
    levels = np.array([0.05, 0.15, 0.35, 0.65, 0.95])  # one forecast value per bin
    p = rng.choice(levels, size=500)
    y = (rng.random(500) < np.clip(p * 1.3, 0, 1)).astype(int)  # over-confident at the top, under below
    d = skill.brier_decomposition(y, p)
    assert d.brier == pytest.approx(np.mean((p - y) ** 2))
    assert d.reliability - d.resolution + d.uncertainty == pytest.approx(d.brier, abs=1e-12)
    assert d.reliability > 0 and d.resolution > 0
    assert d.uncertainty == pytest.approx(y.mean() * (1 - y.mean()))


def test_climatology_has_no_resolution_and_a_perfect_forecast_no_reliability_error() -> None:
    y = np.array([0, 0, 0, 1] * 25)
    clim = skill.brier_decomposition(y, np.full(100, 0.25))
    assert clim.resolution == pytest.approx(0.0) and clim.reliability == pytest.approx(0.0)
    assert clim.brier == pytest.approx(clim.uncertainty)
    perfect = skill.brier_decomposition(y, y.astype(float))
    assert perfect.brier == 0 and perfect.reliability == 0
    assert perfect.resolution == pytest.approx(perfect.uncertainty)


def test_an_empty_sample_is_refused() -> None:
    with pytest.raises(ValueError, match="no forecasts"):
        skill.brier_decomposition(np.array([]), np.array([]))
