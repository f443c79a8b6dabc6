"""The seed architectures, as plain torch modules.

- :class:`FlareCNN1` and :class:`FlareCNN2`: the flaring/non-flaring classifiers of
  Bhattacharjee, Alshehhi, Dhuri & Hanasoge (2020, ApJ 898:98; "Dhuri et al." in DESIGN.md)
  on HMI LOS patches: CNN-1 a plain stack of convolutions, CNN-2 with inception modules.
  Both end in global average pooling, so any patch size works: patches are padded or tiled at
  a fixed plate scale, never resized (the paper traced artefacts to resizing).
- :class:`EmergenceFCN`: the five-layer fully convolutional VGG-like network of Dhuri,
  Hanasoge, Birch & Schunker (2020, ApJ 903:27) on 85x85 Postel patches at 1.4 Mm/px lives in
  :mod:`heliowatch.models.emergence.network` (identity activations, one sigmoid per patch);
  it is re-exported here.
- Charlet et al.'s coronal-jet detector (conv + LSTM) lives in :mod:`heliowatch.models.jets.network`,
  split into a per-frame encoder and a recurrent head.

Layer widths the papers leave open are our choices, recorded in each model card.
All modules return probabilities in [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from heliowatch.models.emergence.network import EmergenceFCN

__all__ = ["EmergenceFCN", "FlareCNN1", "FlareCNN2", "Inception", "RegionClassifier"]


def _conv(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FlareCNN1(nn.Module):
    """CNN-1: four conv + max-pool stages, global average pooling, dropout, one sigmoid.

    Input ``(B, 1, H, W)``: LOS (or Br) field in kG (Gauss / 1000), H and W multiples of 16.
    """

    def __init__(self, width: int = 16, dropout: float = 0.3) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv(1, w, 5),
            nn.MaxPool2d(2),
            _conv(w, 2 * w),
            nn.MaxPool2d(2),
            _conv(2 * w, 4 * w),
            nn.MaxPool2d(2),
            _conv(4 * w, 4 * w),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * w, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probability of a flare, shape ``(B, 1)``."""
        f = self.features(x).mean(dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.head(f))


class Inception(nn.Module):
    """A GoogLeNet-style inception block: 1x1, 3x3, 5x5 and pool branches, concatenated."""

    def __init__(self, cin: int, c1: int, c3: int, c5: int, cp: int) -> None:
        super().__init__()
        self.b1 = _conv(cin, c1, 1)
        self.b3 = nn.Sequential(_conv(cin, c3 // 2, 1), _conv(c3 // 2, c3, 3))
        self.b5 = nn.Sequential(_conv(cin, c5 // 2, 1), _conv(c5 // 2, c5, 5))
        self.bp = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), _conv(cin, cp, 1))
        self.out_channels = c1 + c3 + c5 + cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate the four branches."""
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1)


class FlareCNN2(nn.Module):
    """CNN-2: a conv stem, two inception modules with pooling, global pooling, one sigmoid."""

    def __init__(self, width: int = 16, dropout: float = 0.3) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(_conv(1, w, 5), nn.MaxPool2d(2), _conv(w, 2 * w), nn.MaxPool2d(2))
        self.inc1 = Inception(2 * w, w, 2 * w, w // 2, w // 2)
        self.inc2 = Inception(self.inc1.out_channels, 2 * w, 3 * w, w, w)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(self.inc2.out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probability of a flare, shape ``(B, 1)``."""
        x = self.stem(x)
        x = self.pool(self.inc1(x))
        x = self.pool(self.inc2(x))
        return torch.sigmoid(self.head(x.mean(dim=(2, 3), keepdim=True)))


class RegionClassifier(nn.Module):
    """GoogLeNet-style Mt. Wilson classifier of a region crop (Oliveira & Gradvohl 2020's choice).

    Input ``(B, 1, 64, 64)``: the radial field (B_LOS / mu) of a region, north up, in kG,
    hemisphere-normalised (southern regions sign-inverted so the leading polarity is the same),
    at 2"/px (HMI binned 4x). Output ``(B, 7)``: probabilities of the classes in
    :data:`heliowatch.models.synthetic.regions.SYNTH_CLASSES` order.
    """

    def __init__(self, width: int = 16, classes: int = 7) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(_conv(1, w, 5), nn.MaxPool2d(2))
        self.inc1 = Inception(w, w, w, w // 2, w // 2)
        self.inc2 = Inception(self.inc1.out_channels, w, 2 * w, w // 2, w // 2)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(self.inc2.out_channels, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (softmax)."""
        x = self.pool(self.inc1(self.stem(x)))
        x = self.pool(self.inc2(x))
        return torch.softmax(self.head(x.mean(dim=(2, 3), keepdim=True)), dim=1)


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), _conv(cout, cout)
    )


class RegionDetector(nn.Module):
    """Anchor-free single-stage active-region detector (CenterNet-style; Zhou, Wang & Kraehenbuehl 2019).

    Input ``(B, 2, H, W)``, H and W multiples of 16: channel 0 ``tanh(B_r / 500 G)`` (radial
    field B_LOS/mu), channel 1 the disk mask. Output ``(B, 5, H/4, W/4)`` at stride 4, fine
    enough for small regions (DetectNet's lesson): a centre heat map (sigmoid), the sub-cell
    offset of each centre (2) and the log box size in output cells (2). A small feature
    pyramid brings stride-16 context (a region spans up to ~100 px at 512x512) back to stride 4.
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(_conv(2, w), _down(w, w))  # stride 2
        self.c4 = _down(w, 2 * w)
        self.c8 = _down(2 * w, 4 * w)
        self.c16 = nn.Sequential(_down(4 * w, 4 * w), _conv(4 * w, 4 * w))
        self.up8 = _conv(8 * w, 4 * w)
        self.up4 = _conv(6 * w, 2 * w)
        self.heat = nn.Sequential(_conv(2 * w, 2 * w), nn.Conv2d(2 * w, 1, 1))
        self.box = nn.Sequential(_conv(2 * w, 2 * w), nn.Conv2d(2 * w, 4, 1))
        head = self.heat[-1]
        assert isinstance(head, nn.Conv2d)
        assert head.bias is not None
        nn.init.constant_(head.bias, -2.19)  # prior P(centre) ~ 0.1, as CenterNet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Heat map, offsets and log sizes, concatenated on the channel axis."""
        c4 = self.c4(self.stem(x))
        c8 = self.c8(c4)
        c16 = self.c16(c8)
        p8 = self.up8(torch.cat([c8, nn.functional.interpolate(c16, scale_factor=2.0, mode="nearest")], 1))
        p4 = self.up4(torch.cat([c4, nn.functional.interpolate(p8, scale_factor=2.0, mode="nearest")], 1))
        return torch.cat([torch.sigmoid(self.heat(p4)), self.box(p4)], 1)
