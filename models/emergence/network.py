"""The seed's fully convolutional network (Dhuri, Hanasoge, Birch & Schunker 2020), in torch.

What the seed specifies: five VGG-like 3x3 convolutions with **identity (linear) activations**,
2x2 max-pooling that halves the map while the number of filters doubles, no fully connected
layer, and a final 6x6 max-pool to one value through a sigmoid. Unpadded ("valid") 3x3
convolutions and floor-mode 2x2 pooling (the Keras defaults) give exactly a 6x6 map before the
final pool for an 85x85 patch when the first block holds two convolutions, as in VGG:

====  ===========================  =========  ==========
 #     layer                        filters    map
====  ===========================  =========  ==========
 in    window-averaged LOS, kG      1          85 x 85
 1     conv 3x3 (identity)          w          83 x 83
 2     conv 3x3 (identity)          w          81 x 81
       max-pool 2x2                            40 x 40
 3     conv 3x3 (identity)          2w         38 x 38
       max-pool 2x2                            19 x 19
 4     conv 3x3 (identity)          4w         17 x 17
       max-pool 2x2                            8 x 8
 5     conv 3x3 (identity)          1          6 x 6
       max-pool 6x6, sigmoid                   1 x 1
====  ===========================  =========  ==========

(:data:`LAYERS`; ``w = 8`` by default, 6,761 parameters.) The filter widths are our choice; the
seed's text fixes the pattern, not the counts.

Polarity. Identity activations let both polarities through alike (a ReLU would discard one),
but max-pooling is not odd-symmetric, so a linear-activation network is *not* by itself
invariant to flipping the sign of the whole input. P(emergence) must not depend on which
polarity leads (Hale's law flips it between hemispheres and cycles), so the logit is averaged
over the input and its polarity-flipped copy with the same weights (``symmetric=True``):
``z(x) = (f(x) + f(-x)) / 2``. This is exact (not learnt from augmentation) and keeps every
activation linear; for a single max-pooled filter it turns ``max(w.x)`` into
``(max(w.x) - min(w.x)) / 2``, an unsigned measure of structure.

The network is fully convolutional: a larger input gives a map of probabilities at stride 8
(one per 85x85 receptive field), which is how it can scan a mosaic of patches.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["INPUT_SCALE", "LAYERS", "EmergenceFCN", "feature_map_sizes"]

#: The input (kG) is multiplied by this before the first layer (a constant, not a parameter).
INPUT_SCALE = 100.0

#: (name, output filters as a multiple of the width or 1, output side for an 85x85 input).
LAYERS: tuple[tuple[str, str, int], ...] = (
    ("conv1", "w", 83),
    ("conv2", "w", 81),
    ("pool1", "w", 40),
    ("conv3", "2w", 38),
    ("pool2", "2w", 19),
    ("conv4", "4w", 17),
    ("pool3", "4w", 8),
    ("conv5", "1", 6),
    ("pool_out", "1", 1),
)


def feature_map_sizes(side: int = 85) -> dict[str, int]:
    """Side of each layer's output for a ``side`` x ``side`` input (valid 3x3 convs, floor 2x2 pools)."""
    out: dict[str, int] = {}
    s = side
    for name, _, _ in LAYERS:
        if name.startswith("conv"):
            s -= 2
        elif name == "pool_out":
            s //= 6
        else:
            s //= 2
        out[name] = s
    return out


class EmergenceFCN(nn.Module):
    """Five linear 3x3 conv layers, 2x2 max-pools, a 6x6 max-pool and a sigmoid (see the module table).

    Parameters
    ----------
    width : int
        Filters of the first block (then 2w, 4w, and 1 in the last layer).
    symmetric : bool
        Average the logit over the input and its polarity flip (exact polarity invariance).

    Input ``(B, 1, 85, 85)``: one window-averaged (410 min) tracked Postel patch of the LOS
    field in kG (Gauss / 1000), NaN set to 0. Output ``(B, 1)``: P(emergence within 24 h).
    """

    def __init__(self, width: int = 8, symmetric: bool = True) -> None:
        super().__init__()
        w = width
        self.symmetric = symmetric
        self.conv1 = nn.Conv2d(1, w, 3)
        self.conv2 = nn.Conv2d(w, w, 3)
        self.pool1 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(w, 2 * w, 3)
        self.pool2 = nn.MaxPool2d(2)
        self.conv4 = nn.Conv2d(2 * w, 4 * w, 3)
        self.pool3 = nn.MaxPool2d(2)
        self.conv5 = nn.Conv2d(4 * w, 1, 3)
        self.pool_out = nn.MaxPool2d(6)
        # Variance-preserving initialisation for linear layers (std 1/sqrt(fan_in), zero bias):
        # torch's default shrinks each layer by ~sqrt(3), which five identity layers compound.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, float(m.in_channels * 9) ** -0.5)
                assert m.bias is not None
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 6x6 map of conv5 (before the final max-pool) for an 85x85 input; no activation anywhere."""
        # kG -> units of 10 G, the scale of a quiet-Sun window average, so the weights start at O(1).
        x = self.pool1(self.conv2(self.conv1(x * INPUT_SCALE)))
        x = self.pool2(self.conv3(x))
        x = self.pool3(self.conv4(x))
        return self.conv5(x)

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid output map, polarity-symmetrised if ``symmetric``; ``(B, 1, H', W')``."""
        if not self.symmetric:
            return self.pool_out(self.features(x))
        b = x.shape[0]
        z = self.pool_out(self.features(torch.cat([x, -x], dim=0)))
        return 0.5 * (z[:b] + z[b:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """P(emergence), ``(B, 1)`` for 85x85 inputs (``(B, H'W')`` for larger mosaics)."""
        return torch.sigmoid(self.logit(x)).flatten(1)
