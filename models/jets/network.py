"""Charlet et al.'s conv + LSTM coronal-jet detector, split so the full disk can be served cheaply.

The seed network reads a 30-frame AIA 304 A sequence (24 s cadence, 166x166 at 1.8"/px): five
conv-conv-maxpool blocks per frame, an LSTM over the frames, dropout and one sigmoid. The
per-frame part depends on one frame only, so it is a separate module:

- :class:`JetEncoder`: one frame ``(B, 1, 166, 166)`` -> feature vector ``(B, F)``
  (the five blocks, global average pooling, a linear projection and ReLU);
- :class:`JetHead`: features ``(B, T, F)``, oldest first -> probability ``(B, 1)``
  (LSTM, the last step's output, dropout, linear, sigmoid);
- :class:`JetConvLSTM`: the full model, ``head(encoder(frame) for frame in sequence)`` by
  construction (it holds one encoder and one head and calls them).

Over the whole disk the daemon runs the encoder once per new frame on every tile and caches
the features (:mod:`heliowatch.models.jets.cache`); each step runs only the head over the
cached window. Encoder and head are registered separately (``jet-encoder``, ``jet-head``) so
each exports to ONNX with its own dynamic axes; all three registered jet models are written
by one training run (:mod:`heliowatch.models.jets.train`) and carry its ``run_id``.

Inputs are tiles normalised by :func:`heliowatch.models.jets.tiles.cut` (DN/s divided by the
tile's median), never resized.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

from heliowatch.models.core.errors import ModelError

__all__ = [
    "FEATURES",
    "HIDDEN",
    "TILE",
    "WIDTH",
    "JetConvLSTM",
    "JetEncoder",
    "JetHead",
    "check_same_run",
]

#: Tile side in pooled pixels (500x500 at 0.6"/px pooled 3x3).
TILE = 166
#: Base channel width of the shipped encoder (blocks 8-16-32-32-64, the seed widths kept:
#: the full disk fits the 12 s cadence with them, see docs/eval/jets-network.md).
WIDTH = 8
#: Feature vector size per frame (what the cache stores and the head reads).
FEATURES = 64
#: LSTM hidden size.
HIDDEN = 64


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class JetEncoder(nn.Module):
    """The per-frame CNN: five conv-conv-maxpool blocks, global average pooling, linear, ReLU.

    Parameters
    ----------
    width : int
        Channels of the first block; the blocks have ``w, 2w, 4w, 4w, 8w`` (166 -> 83 -> 41 ->
        20 -> 10 -> 5 pixels).
    features : int
        Size of the feature vector.

    Input ``(B, 1, 166, 166)``: a normalised tile (see :func:`heliowatch.models.jets.tiles.cut`).
    Output ``(B, features)``, non-negative.
    """

    def __init__(self, width: int = WIDTH, features: int = FEATURES) -> None:
        super().__init__()
        chans = [1, width, 2 * width, 4 * width, 4 * width, 8 * width]
        blocks: list[nn.Module] = []
        for cin, cout in itertools.pairwise(chans):
            blocks += [_conv(cin, cout), _conv(cout, cout), nn.MaxPool2d(2)]
        self.cnn = nn.Sequential(*blocks)
        self.proj = nn.Linear(chans[-1], features)
        self.width = width
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Feature vector of each frame."""
        return torch.relu(self.proj(self.cnn(x).mean(dim=(2, 3))))


def _refresh_lstm_dispatch() -> None:
    """Work around a torch 2.13 exporter bug that freezes the time axis of every LSTM export after the first.

    The ONNX exporter swaps in a while-loop LSTM (dynamic time) by editing ``aten.lstm``'s
    ``py_kernels`` in place, without invalidating the op's dispatch cache; the second LSTM
    model exported in a process (``jet-head`` then ``jet-convlstm``, in any order) then
    traces the plain decomposition and silently specialises time to the example's length.
    Dropping the cache while tracing makes the op resolve to the kernel registered now.
    """
    cache = getattr(torch.ops.aten.lstm.input, "_dispatch_cache", None)
    if isinstance(cache, dict):
        cache.clear()


class JetHead(nn.Module):
    """The recurrent head: LSTM over the frames' features, dropout, linear, sigmoid.

    Input ``(B, T, features)``, oldest frame first, 24 s apart. Output ``(B, 1)``: the
    probability that the window holds a jet (read at the last frame).
    """

    def __init__(self, features: int = FEATURES, hidden: int = HIDDEN, dropout: float = 0.5) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, 1))

    def logit(self, f: torch.Tensor) -> torch.Tensor:
        """The pre-sigmoid output (training uses it with a numerically stable loss)."""
        out, _ = self.lstm(f)
        return self.out(out[:, -1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probability of a jet in the window of features ``x`` (the exporter names the input ``x``)."""
        if torch.compiler.is_exporting():
            _refresh_lstm_dispatch()
        return torch.sigmoid(self.logit(x))


class JetConvLSTM(nn.Module):
    """The full seed model: :class:`JetEncoder` on every frame, then :class:`JetHead`.

    Input ``(B, T, 1, 166, 166)``: normalised tiles, T frames (30 at 24 s). Output ``(B, 1)``.
    Identical to ``head(encoder(x[:, t]) for t)`` because it is built from those two modules.
    """

    def __init__(self, width: int = WIDTH, features: int = FEATURES, hidden: int = HIDDEN, dropout: float = 0.5) -> None:
        super().__init__()
        self.encoder = JetEncoder(width, features)
        self.head = JetHead(features, hidden, dropout)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame features ``(B, T, F)`` of a sequence ``(B, T, 1, H, W)``."""
        b, t = x.shape[0], x.shape[1]
        return self.encoder(x.reshape(b * t, x.shape[2], x.shape[3], x.shape[4])).reshape(b, t, -1)

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid output of the sequence."""
        return self.head.logit(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probability of a jet in the sequence."""
        return self.head(self.features(x))


def check_same_run(encoder_card: dict[str, Any], head_card: dict[str, Any]) -> str:
    """The training ``run_id`` shared by an encoder's and a head's model cards.

    Features are only meaningful to the head trained with them: a retrained encoder served
    with the shipped head (or the reverse) would answer without error and mean nothing.

    Raises
    ------
    ModelError
        If either card lacks a run id or the two differ.
    """
    a = (encoder_card.get("training") or {}).get("run_id")
    b = (head_card.get("training") or {}).get("run_id")
    if not a or a != b:
        msg = f"jet encoder and head come from different training runs ({a!r} vs {b!r}); retrain or ship them together"
        raise ModelError(msg)
    return str(a)
