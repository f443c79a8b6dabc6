"""Training of the jet detector on synthetic 304 A sequences: one run writes encoder, head and full model.

Recipe (:func:`train_jet_model`, what ``heliowatch train jet-convlstm`` calls):

1. ``sequences`` synthetic 30-frame sequences (24 s cadence, 166x166 at 1.8"/px), half with a
   jet, from :mod:`heliowatch.models.synthetic.jets` (the generator with Solar Jet Hunter
   statistics) when it is installed, else :func:`heliowatch.models.synthetic.aia.synth_aia_sequence`.
   Sequence ``i`` has generator seed ``seed * 100_000 + i``; sequences (hence jets) are split
   60/20/20 into train, validation and test sets, so no jet has frames in two sets.
2. Every frame is normalised exactly as at inference (:func:`heliowatch.models.jets.tiles.cut`).
3. The encoder is trained on single frames (a jet visible in this frame or not, from the
   generator's truth) with a temporary linear classifier, random flips and 90-degree turns:
   a step on 16 frames costs what a step on one 16-frame sequence would.
4. Encoder and head are trained together on random 10-frame excerpts, so the encoder's
   features learn what the LSTM needs from them (the seed's end-to-end training, shortened).
5. The encoder is frozen; the features of every frame are computed once (as the daemon's
   cache holds them) and the head (LSTM) is trained on them, with windows cut to 10..30
   frames and interior frames dropped and interpolated as :class:`heliowatch.models.jets.cache.FeatureCache`
   does, so shorter and gapped windows are in its training set.
6. The decision threshold is chosen on the validation set: the lowest whose false-positive
   rate is at most 10 % (favouring recall, as Charlet et al. did with 0.1, within a false-alarm
   budget: over the whole disk every tile is a trial); accuracy, F1, AUC, recall and precision
   are reported on the test set at that threshold and at 0.5.

The run's id (a hash of the trained weights) is written into the three cards so encoder and
head from different runs are never served together (:func:`heliowatch.models.jets.network.check_same_run`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import importlib.util
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from heliowatch.models import registry
from heliowatch.models.jets.network import FEATURES, JetConvLSTM
from heliowatch.models.jets.tiles import NORM_CLIP, NORM_FLOOR_DN_S, TileGrid, cut
from heliowatch.models.skill import roc_auc
from heliowatch.models.synthetic.aia import synth_aia_sequence

__all__ = ["JetSequence", "make_sequences", "metrics", "real_sequences", "train_jet_model"]

_T0 = dt.datetime(2014, 1, 1, tzinfo=dt.UTC)
#: False-positive rate the validation threshold may reach (the lowest threshold within it is taken).
MAX_FPR = 0.1
_SEED_STRIDE = 100_000


@dataclass(frozen=True)
class JetSequence:
    """One normalised training sequence and its labels."""

    seed: int
    frames: np.ndarray  # (T, 1, 166, 166) float32, normalised
    jet: bool
    frame_labels: np.ndarray  # (T,) bool: a jet is visible in that frame


def _generator() -> tuple[Callable[[int, bool], tuple[np.ndarray, dict[str, Any]]], str]:
    """The synthetic generator to train on: the catalogue-statistics one when installed."""

    def aia(seed: int, jet: bool) -> tuple[np.ndarray, dict[str, Any]]:
        cube, _, truth = synth_aia_sequence(_T0 + dt.timedelta(hours=seed % 10_000), jet=jet, seed=seed)
        return cube, truth

    if importlib.util.find_spec("heliowatch.models.synthetic.jets") is None:
        return aia, "heliowatch.models.synthetic.aia.synth_aia_sequence"
    # The catalogue-statistics generator is another module's, and optional: use it only if it
    # offers a cutout generator of the shape this recipe knows, else say why not.
    mod = importlib.import_module("heliowatch.models.synthetic.jets")
    fn = getattr(mod, "synth_jet_cutout", None)
    if fn is None or not {"jet", "seed"} <= set(inspect.signature(fn).parameters):
        return aia, "heliowatch.models.synthetic.aia.synth_aia_sequence (synthetic.jets has no compatible synth_jet_cutout)"
    extra = {"stats": None} if "stats" in inspect.signature(fn).parameters else {}

    def jets(seed: int, jet: bool) -> tuple[np.ndarray, dict[str, Any]]:
        frames, truth = fn(_T0 + dt.timedelta(hours=seed % 10_000), jet=jet, seed=seed, **extra)
        cube = np.stack([np.asarray(getattr(f, "data", f), dtype=np.float32) for f in frames])
        visible = sorted({int(k) for j in truth.get("jets", []) for k in j.get("frames_visible", [])})
        return cube, {"jet": bool(truth.get("jet", jet)), "frames_with_jet": visible}

    return jets, "heliowatch.models.synthetic.jets.synth_jet_cutout (Solar Jet Hunter statistics, built-in sample)"


def make_sequences(seeds: list[int], *, progress: Callable[[int, int, str], None] | None = None) -> tuple[list[JetSequence], str]:
    """Generate and normalise sequences (even seeds with a jet, odd without); returns them and the generator's name."""
    gen, name = _generator()
    out = []
    for k, s in enumerate(seeds):
        jet = s % 2 == 0
        cube, truth = gen(s, jet)
        if cube.ndim != 3 or cube.shape[1] > 166 or cube.shape[2] > 166:
            msg = f"generator {name} gave a sequence of shape {cube.shape}; need (T, <=166, <=166)"
            raise ValueError(msg)
        grid = TileGrid.single(cube.shape[1:])
        frames = np.stack([cut(f, grid)[0] for f in cube])
        labels = np.zeros(len(cube), dtype=bool)
        if "frames_with_jet" in truth:
            labels[list(truth["frames_with_jet"])] = True
            jet = bool(labels.any())  # a jet outside the window is no jet for this window
        else:
            jet = bool(truth.get("jet", jet))
            labels[:] = jet
        out.append(JetSequence(s, frames, jet, labels))
        if progress:
            progress(k + 1, len(seeds), "synthesising")
    return out, name


def real_sequences(items: list[tuple[np.ndarray, bool]]) -> list[JetSequence]:
    """Real labelled cubes (DN/s, at most 166 px a side) normalised like the daemon's tiles.

    A catalogue labels the sequence, not its frames: every frame of a jet sequence counts as
    showing it (what the encoder's frame stage then learns is noisier than on synthetic data).
    """
    out = []
    for k, (cube, jet) in enumerate(items):
        c = np.asarray(cube, dtype=np.float32)[:, :166, :166]
        grid = TileGrid.single(c.shape[1:])
        frames = np.stack([cut(f, grid)[0] for f in c])
        out.append(JetSequence(-1 - k, frames, bool(jet), np.full(len(c), bool(jet))))
    return out


def metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float | int | None]:
    """Accuracy, F1, recall, precision at ``threshold`` and AUC of probabilities ``p`` for labels ``y``."""
    yb = np.asarray(y, dtype=bool)
    pred = np.asarray(p) >= threshold
    tp, fp = int((pred & yb).sum()), int((pred & ~yb).sum())
    fn, tn = int((~pred & yb).sum()), int((~pred & ~yb).sum())
    recall = tp / (tp + fn) if tp + fn else float("nan")
    precision = tp / (tp + fp) if tp + fp else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")

    def r4(v: float) -> float | None:  # strict JSON in the cards: no NaN
        return round(float(v), 4) if np.isfinite(v) else None

    return {
        "threshold": round(float(threshold), 4),
        "accuracy": round((tp + tn) / len(yb), 4),
        "f1": r4(f1),
        "recall": r4(recall),
        "precision": r4(precision),
        "false_positive_rate": r4(fp / (fp + tn)) if fp + tn else None,
        "auc": r4(roc_auc(yb, np.asarray(p))),
        "n": len(yb),
        "n_jet": int(yb.sum()),
    }


def _choose_threshold(y: np.ndarray, p: np.ndarray, max_fpr: float = MAX_FPR) -> float:
    """The lowest threshold whose false-positive rate on (y, p) is at most ``max_fpr``.

    As low as the false alarms allow, to favour recall (Charlet et al. lowered theirs to 0.1);
    bounded because over the whole disk every tile is a trial.
    """
    # float32 throughout: the models answer in float32, and one float64 ulp above a float32 score
    # rounds back onto it when compared with float32 probabilities.
    neg = np.sort(np.asarray(p, dtype=np.float32)[~np.asarray(y, dtype=bool)])[::-1]
    if neg.size == 0:
        return 0.5
    k = int(np.floor(max_fpr * neg.size + 1e-9))  # this many negatives may lie at or above the threshold
    if k >= neg.size:
        return float(neg[-1])
    return float(np.nextafter(neg[k], np.float32(np.inf)))


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random flips and 90-degree turns of a batch of frames (jets point any way)."""
    if torch.rand(1, generator=gen).item() < 0.5:
        x = x.flip(-1)
    if torch.rand(1, generator=gen).item() < 0.5:
        x = x.flip(-2)
    return torch.rot90(x, int(torch.randint(0, 4, (1,), generator=gen).item()), dims=(-2, -1))


def _train_encoder(
    model: JetConvLSTM, train: list[JetSequence], *, epochs: int, frames_per_seq: int, seed: int, progress: Any
) -> list[float]:
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    probe = nn.Linear(FEATURES, 1)  # temporary frame classifier, discarded
    params = [*model.encoder.parameters(), *probe.parameters()]
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4)
    steps = epochs * int(np.ceil(len(train) * frames_per_seq / 16))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=max(steps, 1))
    loss_fn = nn.BCEWithLogitsLoss()
    losses = []
    for ep in range(epochs):
        model.encoder.train()
        xs, ys = [], []
        for s in train:
            k = rng.choice(len(s.frames), size=frames_per_seq, replace=False)
            xs.append(s.frames[k])
            ys.append(s.frame_labels[k])
        x_all = torch.from_numpy(np.concatenate(xs))
        y_all = torch.from_numpy(np.concatenate(ys).astype(np.float32))
        perm = torch.randperm(len(x_all), generator=gen)
        total = 0.0
        for b in range(0, len(x_all), 16):
            idx = perm[b : b + 16]
            xb = _augment(x_all[idx], gen)
            loss = loss_fn(probe(model.encoder(xb))[:, 0], y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(x_all))
        if progress:
            progress(ep + 1, epochs, f"encoder epoch loss {losses[-1]:.3f}")
    model.encoder.eval()
    return losses


def _train_end_to_end(
    model: JetConvLSTM, train: list[JetSequence], *, steps: int, window: int, seed: int, progress: Any
) -> list[float]:
    """Encoder and head together on random ``window``-frame excerpts (4 per step), labelled by the jet's visibility in them."""
    gen = torch.Generator().manual_seed(seed + 2)
    rng = np.random.default_rng(seed + 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    losses = []
    for step in range(steps):
        xs, ys = [], []
        for i in rng.choice(len(train), size=min(4, len(train)), replace=False):
            s = train[i]
            a = int(rng.integers(0, len(s.frames) - window + 1))
            xs.append(s.frames[a : a + window])
            ys.append(float(s.frame_labels[a : a + window].any()))
        loss = loss_fn(model.logit(_augment(torch.from_numpy(np.stack(xs)), gen))[:, 0], torch.tensor(ys))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if progress and (step + 1) % 50 == 0:
            progress(step + 1, steps, f"end-to-end loss {np.mean(losses[-50:]):.3f}")
    model.eval()
    return losses


def _features(model: JetConvLSTM, seqs: list[JetSequence]) -> np.ndarray:
    with torch.inference_mode():
        return np.stack([model.encoder(torch.from_numpy(s.frames)).numpy() for s in seqs])  # (N, T, F)


def _gap_fill(f: torch.Tensor, drop: list[int]) -> torch.Tensor:
    """Replace frames ``drop`` (interior) by linear interpolation of their nearest kept neighbours, as the cache does."""
    keep = [k for k in range(f.shape[0]) if k not in drop]
    out = f.clone()
    for k in drop:
        a = max(j for j in keep if j < k)
        b = min(j for j in keep if j > k)
        w = (k - a) / (b - a)
        out[k] = (1 - w) * f[a] + w * f[b]
    return out


def _train_head(
    model: JetConvLSTM, feats: np.ndarray, seqs: list[JetSequence], *, epochs: int, seed: int, progress: Any
) -> list[float]:
    gen = torch.Generator().manual_seed(seed + 1)
    rng = np.random.default_rng(seed + 1)
    head = model.head
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    loss_fn = nn.BCEWithLogitsLoss()
    ft = torch.from_numpy(feats)
    losses = []
    for ep in range(epochs):
        head.train()
        perm = torch.randperm(len(seqs), generator=gen).tolist()
        total = 0.0
        for b in range(0, len(perm), 8):
            # One window length per batch (the LSTM runs on a rectangle); half the batches full length.
            n_t = ft.shape[1] if rng.random() < 0.5 else int(rng.integers(10, ft.shape[1] + 1))
            xb, yb = [], []
            for i in perm[b : b + 8]:
                f = ft[i, -n_t:]
                if rng.random() < 0.3 and n_t >= 6:
                    drop = sorted({int(v) for v in rng.integers(1, n_t - 1, size=int(rng.integers(1, 3)))})
                    f = _gap_fill(f, drop)
                xb.append(f)
                yb.append(float(seqs[i].frame_labels[-n_t:].any()))
            loss = loss_fn(head.logit(torch.stack(xb))[:, 0], torch.tensor(yb))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(xb)
        sched.step()
        losses.append(total / len(seqs))
        if progress and (ep + 1) % 25 == 0:
            progress(ep + 1, epochs, f"head epoch loss {losses[-1]:.3f}")
    head.eval()
    return losses


def _predict(model: JetConvLSTM, feats: np.ndarray, n_t: int | None = None) -> np.ndarray:
    with torch.inference_mode():
        f = torch.from_numpy(feats if n_t is None else feats[:, -n_t:])
        return model.head(f).numpy()[:, 0]


def _run_id(model: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def train_jet_model(
    out: Path | None,
    *,
    sequences: int = 480,
    epochs: int = 8,
    seed: int = 0,
    head_epochs: int = 150,
    frames_per_seq: int = 6,
    e2e_steps: int = 150,
    progress: Callable[[int, int, str], None] | None = None,
    real: dict[str, list[tuple[np.ndarray, bool]]] | None = None,
    real_description: str = "",
) -> dict[str, Any]:
    """Train the jet detector; write ``jet-convlstm``, ``jet-encoder`` and ``jet-head``.

    On synthetic sequences by default; with ``real``, on a real labelled set split by date
    (:func:`heliowatch.pipelines.datasets.jets.load_jet_dataset`): its own train, validation
    and test sets are used as they are, and the cards say the weights are real-data ones.

    Parameters
    ----------
    out : pathlib.Path or None
        Where to write weights and cards (None: train and report only).
    sequences : int
        Synthetic sequences in all (half with a jet), split 60/20/20 by sequence.
    epochs : int
        Encoder epochs (each sees ``frames_per_seq`` random frames of every training sequence).
    seed : int
        Seeds the generator seeds, the split, the initialisation and the sampling.
    head_epochs : int
        Epochs of the recurrent head on the frozen encoder's features.
    frames_per_seq : int
        Frames of each training sequence per encoder epoch.
    e2e_steps : int
        Steps (4 excerpts of 10 frames each) of end-to-end training after the frame stage.
    progress : callable, optional
        ``progress(done, total, message)``.
    real : dict or None
        ``{"train" | "validation" | "test": [(cube DN/s (T, H, W), is_jet), ...]}``; None: synthetic.
    real_description : str
        What the real set is (for the cards).

    Returns
    -------
    dict
        Test and validation skill, the threshold, the split sizes, CPU time and the run id.
    """
    if sequences < 10:
        msg = f"need at least 10 sequences to split into train/validation/test (got {sequences})"
        raise ValueError(msg)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    torch.manual_seed(seed)
    train, val, test = [], [], []
    if real is not None:
        train, val, test = (real_sequences(real[k]) for k in ("train", "validation", "test"))
        generator = f"real: {real_description or 'labelled AIA 304 A cutout sequences'}"
        sequences = len(train) + len(val) + len(test)
    else:
        seeds = [seed * _SEED_STRIDE + i for i in range(sequences)]
        seqs, generator = make_sequences(seeds, progress=progress)
        # Split by sequence (a jet's frames stay in one set), stratified so each set is half jets.
        rng = np.random.default_rng(seed)
        for cls in (True, False):
            idx = rng.permutation([i for i, s in enumerate(seqs) if s.jet is cls])
            n = max(1, len(idx) // 5)
            test += [seqs[i] for i in idx[:n]]
            val += [seqs[i] for i in idx[n : 2 * n]]
            train += [seqs[i] for i in idx[2 * n :]]
    model = JetConvLSTM()
    enc_losses = _train_encoder(model, train, epochs=epochs, frames_per_seq=frames_per_seq, seed=seed, progress=progress)
    e2e_losses = _train_end_to_end(model, train, steps=e2e_steps, window=10, seed=seed, progress=progress) if e2e_steps else []
    f_train, f_val, f_test = _features(model, train), _features(model, val), _features(model, test)
    head_losses = _train_head(model, f_train, train, epochs=head_epochs, seed=seed, progress=progress)
    model.eval()
    y_val = np.array([s.jet for s in val])
    y_test = np.array([s.jet for s in test])
    p_val, p_test = _predict(model, f_val), _predict(model, f_test)
    thr = _choose_threshold(y_val, p_val)
    p_test10 = _predict(model, f_test, 10)
    y_test10 = np.array([s.frame_labels[-10:].any() for s in test])
    result: dict[str, Any] = {
        "test": metrics(y_test, p_test, thr),
        "test_at_0.5": metrics(y_test, p_test, 0.5),
        "test_last_10_frames": metrics(y_test10, p_test10, thr),
        "validation": metrics(y_val, p_val, thr),
        "threshold": thr,  # exact: the float32 score it sits just above must stay below it
        "split": {"train": len(train), "validation": len(val), "test": len(test)},
        "encoder_loss": [round(v, 4) for v in enc_losses],
        "end_to_end_loss_last50": round(float(np.mean(e2e_losses[-50:])), 4) if e2e_losses else None,
        "head_loss_last": round(head_losses[-1], 4),
        "cpu_s": round(time.process_time() - cpu0, 1),
        "wall_s": round(time.perf_counter() - wall0, 1),
        "torch_threads": torch.get_num_threads(),
        "generator": generator,
        "run_id": _run_id(model),
    }
    if out is not None:
        recipe = {"sequences": sequences, "epochs": epochs, "seed": seed, "head_epochs": head_epochs, "fps": frames_per_seq}
        _save(out, model, result, **recipe, e2e=e2e_steps)
    return result


def _save(
    out: Path,
    model: JetConvLSTM,
    result: dict[str, Any],
    *,
    sequences: int,
    epochs: int,
    seed: int,
    head_epochs: int,
    fps: int,
    e2e: int,
) -> None:
    split = result["split"]
    catalogue = "synthetic.jets" in result["generator"]
    scene = (
        "Solar Jet Hunter catalogue jets (height, width, duration, speed, base position; 60 % of cutouts at the limb) on a "
        "projected network with limb brightening, off-limb corona, plage, prominences; distractors: flickering bright points, "
        "network brightenings, oscillating loops, a limb spicule forest, short exposures, exposure steps, photon and read noise"
        if catalogue
        else "jets of random speed, length and direction on a chromospheric network inside the disk; distractors: flickering "
        "bright points, oscillating loops, short exposures, photon and read noise"
    )
    is_real = result["generator"].startswith("real:")
    data_text = (
        f"{sequences} {result['generator'][5:].strip()}; split by date {split['train']}/{split['validation']}/{split['test']} "
        "train/validation/test"
        if is_real
        else (
            f'{sequences} synthetic AIA 304 A sequences (30 frames at 24 s, 166x166 at 1.8"/px, half with a jet: {scene}) '
            f"from {result['generator']}, "
            f"generator seeds {seed * _SEED_STRIDE}..{seed * _SEED_STRIDE + sequences - 1}; split by sequence "
            f"{split['train']}/{split['validation']}/{split['test']} train/validation/test"
        )
    )
    training = {
        "kind": "supervised",
        "synthetic": not is_real,
        "data": data_text,
        "cutoff_date": None,
        "recipe": (
            f"heliowatch train jet-convlstm {'--data <set> ' if is_real else ''}"
            f"--sequences {sequences} --epochs {epochs} --seed {seed} "
            f"= heliowatch.models.jets.train.train_jet_model(out, sequences={sequences}, epochs={epochs}, seed={seed}, "
            f"head_epochs={head_epochs}, frames_per_seq={fps}, e2e_steps={e2e})"
        ),
        "procedure": (
            f"encoder on single frames ({fps} random frames per training sequence per epoch, {epochs} epochs, flips and "
            f"90-degree turns, batches of 16, frame labels from the generator's truth) with a discarded linear probe; then "
            f"encoder + head end to end on 10-frame excerpts ({e2e} steps of 4, labelled by the jet's visibility in them); "
            f"then the head alone on the frozen encoder's features ({head_epochs} epochs, windows of 10..30 frames, 1-2 "
            "interior frames interpolated in 30 % of windows)"
        ),
        "amount": f"{result['cpu_s']} CPU seconds ({result['wall_s']} s wall, {result['torch_threads']} torch thread(s))",
        "run_id": result["run_id"],
    }
    normalisation = {
        "input": 'pooled 304 A frame in DN/s (1.8"/px, north up), cut into 166x166 tiles by heliowatch.models.jets.tiles.cut',
        "per_tile": (
            f"divided by the median of the tile's in-image finite pixels, floored at {NORM_FLOOR_DN_S} DN/s; "
            f"clipped to +-{NORM_CLIP}"
        ),
        "why": (
            "cancels exposure, calibration and the 304 channel's sensitivity loss; a jet covers too few pixels to move the median"
        ),
        "padding": "zeros outside the image (cutouts smaller than a tile are centred, never resized)",
    }
    skill = {
        "evaluation": (
            (
                f"held-out real sequences ({split['test']}, days after every training and validation day)"
                if is_real
                else f"held-out synthetic sequences ({split['test']}, seeds disjoint from training and validation)"
            )
            + f"; threshold chosen on the validation set as the lowest with false-positive rate <= {MAX_FPR}"
        ),
        **{k: result[k] for k in ("test", "test_at_0.5", "test_last_10_frames", "validation")},
        "paper_for_comparison": "Charlet et al. on real AIA 304 cutouts: accuracy 92.3 %, F1 0.93, AUC 0.92 (threshold 0.1)",
    }
    limits = [
        (
            "trained on real catalogue sequences labelled per sequence, not per frame; a short build is far smaller than "
            "the seed's set: check the test figures before relying on it"
            if is_real
            else "trained and evaluated on synthetic sequences only (labelled synthetic): real jets, spicules, flares, "
            "filament eruptions and real noise are absent; not operational"
        ),
        f"trained briefly on CPU: {training['amount']}, {sequences} sequences",
        (
            "the synthetic limb (spicules, prominences, off-limb corona) is a model of the real one: limb and off-limb "
            "tiles are where the synthetic-to-real gap is largest"
            if catalogue
            else "training cutouts lie inside the disk: limb and off-limb tiles (dark sky, the limb's bright rim, "
            "prominences) are outside the training distribution and their probabilities are less reliable"
        ),
        "probabilities are not calibrated to the real rate of jets (training sets are half jets; on the Sun a tile holds "
        "a jet far more rarely): read them as scores, compared with the threshold",
        f"over the whole disk every tile is a trial: at the test false-positive rate {result['test']['false_positive_rate']} "
        "about that fraction of the ~217 tiles would fire on a jet-free frame without temporal/event merging",
        "windows shorter than 30 frames (down to 10) or with interpolated gaps are flagged degraded",
    ]
    common = {
        "training": training,
        "operational": False,
        "skill": skill,
        "threshold": {
            "value": result["threshold"],
            "chosen_on": "validation",
            "rule": f"lowest threshold with validation false-positive rate <= {MAX_FPR}",
        },
        "normalisation": normalisation,
        "features": FEATURES,
        "known_limits": limits,
    }
    registry.save_weights("jet-convlstm", model, {**common, "serving": "reference: encoder + head in one graph"}, root=out)
    registry.save_weights(
        "jet-encoder", model.encoder, {**common, "serving": "once per new frame, all tiles batched; outputs cached"}, root=out
    )
    registry.save_weights(
        "jet-head", model.head, {**common, "serving": "every frame, on the cached window of every tile"}, root=out
    )
