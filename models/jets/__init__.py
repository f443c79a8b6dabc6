"""Coronal jets in AIA 304 A: tiles, the conv + LSTM network, its feature cache and training, the baseline and events."""
