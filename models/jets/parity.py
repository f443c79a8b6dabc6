"""Inputs for the backend parity check of the jet models (``heliowatch models check``).

Apart from :mod:`heliowatch.models.jets.network` because it needs the registry, which itself
builds the network's classes: network <- registry <- parity, never a cycle.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from heliowatch.models import registry
from heliowatch.models.core.errors import ModelError
from heliowatch.models.jets.tiles import TILE, TileGrid, cut

__all__ = ["parity_input"]


def parity_input(name: str, cube_dn_s: np.ndarray, *, weights_root: Any = None) -> np.ndarray:
    """An input for the backend parity check of a jet model, from a (T, H, W) 304 sequence in DN/s.

    The last 30 frames are used; a cutout larger than a tile gives its most central tile.

    ``jet-convlstm``: the normalised sequence ``(1, T, 1, 166, 166)``; ``jet-encoder``: its
    frames as a batch ``(T, 1, 166, 166)``; ``jet-head``: the encoder's features of the
    sequence ``(1, T, F)`` (computed with the registered encoder, float32 torch).
    """
    cube = np.asarray(cube_dn_s, dtype=np.float32)
    if cube.ndim != 3 or cube.shape[0] < 2:
        msg = f"expected a (T >= 2, H, W) sequence, got shape {cube.shape}"
        raise ModelError(msg)
    cube = cube[-30:]  # the nominal window; the sequence models' profile stops at 48 frames
    rows, cols = cube.shape[1:]
    if rows <= TILE and cols <= TILE:
        grid, k = TileGrid.single((rows, cols)), 0
    else:  # a larger cutout: the tile nearest its centre
        grid = TileGrid.build((rows, cols), 1.8, ((cols - 1) / 2, (rows - 1) / 2), float("inf"), reach_rsun=None)
        k = min(grid.tiles, key=lambda t: abs(t.centre_hpc[0]) + abs(t.centre_hpc[1])).index
    frames = np.stack([cut(f, grid)[k] for f in cube])  # (T, 1, 166, 166)
    if name == "jet-encoder":
        return frames
    if name == "jet-convlstm":
        return frames[None]
    if name == "jet-head":
        enc = registry.load_torch("jet-encoder", root=weights_root)
        with torch.inference_mode():
            feats = enc(torch.from_numpy(frames)).numpy()
        return feats[None].astype(np.float32)
    msg = f"not a jet model: {name!r}"
    raise ModelError(msg)
