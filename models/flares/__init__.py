"""Flare forecasting models: SHARP-feature models on real data, region-class climatology,
the seed CNNs, calibration, verification and the Leka et al. (2019) backtest."""
