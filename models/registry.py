"""The model registry: each model is a torch module + safetensors weights + a model card.

Cards (``models/weights/<name>.card.json``) say what a model is, what it was trained on
(real or synthetic, with provenance and cutoff date), how skilful it is on what, and its
known limits; every product that a model touches carries its name and version. Weights are
safetensors (never pickle) and are checked against the SHA-256 in the card on load.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from heliowatch.models.core.errors import ModelError

__all__ = ["MODELS", "ModelSpec", "get", "load_card", "load_torch", "resolve_root", "save_weights", "weights_dir"]


@dataclass(frozen=True)
class ModelSpec:
    """How to build and feed one model.

    ``example_shape`` is the input used for export and benchmarks. ``dynamic`` maps an input
    axis to ``(name, min, opt, max)``: the dynamic range exported to ONNX and given to
    TensorRT as its optimisation profile.
    """

    name: str
    version: str
    factory: Callable[[], Any]
    example_shape: tuple[int, ...]
    dynamic: dict[int, tuple[str, int, int, int]]
    input_name: str
    units: str
    plate_scale: str
    description: str
    reference: str
    architecture_notes: str
    init_seed: int
    extra: dict[str, Any] = field(default_factory=dict)


def _flare1() -> Any:
    from heliowatch.models.architectures import FlareCNN1  # noqa: PLC0415  (imports torch: optional heavy backend)

    return FlareCNN1()


def _flare2() -> Any:
    from heliowatch.models.architectures import FlareCNN2  # noqa: PLC0415  (imports torch: optional heavy backend)

    return FlareCNN2()


def _emergence() -> Any:
    from heliowatch.models.emergence.network import EmergenceFCN  # noqa: PLC0415  (imports torch: optional heavy backend)

    return EmergenceFCN()


def _region_cls() -> Any:
    from heliowatch.models.architectures import RegionClassifier  # noqa: PLC0415  (imports torch: optional heavy backend)

    return RegionClassifier()


def _region_det() -> Any:
    from heliowatch.models.architectures import RegionDetector  # noqa: PLC0415  (imports torch: optional heavy backend)

    return RegionDetector()


def _jets() -> Any:
    from heliowatch.models.jets.network import JetConvLSTM  # noqa: PLC0415  (imports torch: optional heavy backend)

    return JetConvLSTM()


def _jet_encoder() -> Any:
    from heliowatch.models.jets.network import JetEncoder  # noqa: PLC0415  (imports torch: optional heavy backend)

    return JetEncoder()


def _jet_head() -> Any:
    from heliowatch.models.jets.network import JetHead  # noqa: PLC0415  (imports torch: optional heavy backend)

    return JetHead()


_FLARE_IN = "LOS field in kG (Gauss/1000), NaN set to 0; hemisphere-normalised (south flipped N-S and in sign)"
_JET_IN = (
    "AIA 304 A tile in DN/s divided by the median of its in-image pixels (floored at 2 DN/s), clipped to +-50, "
    "zero-padded (heliowatch.models.jets.tiles.cut)"
)
_JET_SCALE = '166x166 at 1.8"/px (500x500 at 0.6"/px pooled 3x3), north up'
_JET_REF = "Charlet et al., conv + LSTM jet detector (accuracy 92.3 %, F1 0.93, AUC 0.92; threshold 0.1 for recall)"
_JET_ENC = "5 x (conv-conv(BN,ReLU)-maxpool) per frame (8-16-32-32-64), GAP, linear 64 + ReLU"
_JET_HEAD = "LSTM(64) over the frames, last step, dropout 0.5, linear, sigmoid"
MODELS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        ModelSpec(
            name="flare-cnn1",
            version="0.1.0",
            factory=_flare1,
            example_shape=(1, 1, 256, 512),
            dynamic={0: ("batch", 1, 8, 64)},
            input_name="patch",
            units=_FLARE_IN,
            plate_scale="0.06 deg/px CEA (SHARP 0.03 deg/px binned 2x2), patch padded into a 256x512 canvas, never resized",
            description="CNN-1: flaring vs non-flaring SHARP patch (P of >=M flare in 24 h)",
            reference="Bhattacharjee, Alshehhi, Dhuri & Hanasoge 2020, ApJ 898:98 (CNN-1)",
            architecture_notes="4 conv(BN,ReLU)+maxpool stages (16-32-64-64), global average pooling, dropout 0.3, sigmoid",
            init_seed=101,
        ),
        ModelSpec(
            name="flare-cnn2",
            version="0.1.0",
            factory=_flare2,
            example_shape=(1, 1, 256, 512),
            dynamic={0: ("batch", 1, 8, 64)},
            input_name="patch",
            units=_FLARE_IN,
            plate_scale="0.06 deg/px CEA, 256x512 canvas (padded, never resized)",
            description="CNN-2 (inception): flaring vs non-flaring SHARP patch",
            reference="Bhattacharjee, Alshehhi, Dhuri & Hanasoge 2020, ApJ 898:98 (CNN-2)",
            architecture_notes=(
                "conv stem (16-32), two GoogLeNet-style inception modules with max-pooling, GAP, dropout 0.3, sigmoid"
            ),
            init_seed=102,
        ),
        ModelSpec(
            name="emergence-fcn",
            version="0.2.0",
            factory=_emergence,
            example_shape=(1, 1, 85, 85),
            dynamic={0: ("batch", 1, 128, 512)},
            input_name="patch",
            units="LOS field in kG (Gauss/1000) averaged over a 410-min window of 720 s frames, NaN set to 0",
            plate_scale="85x85 Postel (azimuthal equidistant) patch at 1.4 Mm/px on a Carrington grid point, north up, west right"
            " (heliowatch.models.emergence.patches)",
            description="P(emergence within 24 h) of a tracked patch from one averaging window",
            reference="Dhuri, Hanasoge, Birch & Schunker 2020, ApJ 903:27 (fully convolutional VGG-like CNN)",
            architecture_notes="five 3x3 valid convs with identity activations (8-8 | 16 | 32 | 1 filters), 2x2 max-pools"
            " 81->40->19->8, conv5 map 6x6, 6x6 max-pool, sigmoid; no FC layer; logit averaged over the polarity flip",
            init_seed=103,
        ),
        ModelSpec(
            name="region-classifier",
            version="0.1.0",
            factory=_region_cls,
            example_shape=(1, 1, 64, 64),
            dynamic={0: ("batch", 1, 16, 64)},
            input_name="crop",
            units="radial field B_LOS/mu in kG, north up, southern regions sign-inverted (Hale)",
            plate_scale='64x64 at 2"/px (HMI 0.5"/px binned 4x), centred on the region\'s flux centroid',
            description="Mt. Wilson class of an active-region crop (7 classes)",
            reference="Oliveira & Gradvohl 2020 (GoogLeNet classifier); inception modules after Szegedy et al. 2015",
            architecture_notes="conv stem (16), two inception modules with max-pooling, GAP, dropout 0.3, softmax over 7 classes",
            init_seed=105,
        ),
        ModelSpec(
            name="region-detector",
            version="0.1.0",
            factory=_region_det,
            example_shape=(1, 2, 512, 512),
            dynamic={0: ("batch", 1, 1, 4)},
            input_name="disk",
            units="channel 0: tanh(B_LOS / mu / 500 G), north up; channel 1: disk mask (mu > 0.1)",
            plate_scale='512x512 full disk at 4"/px (HMI 0.5"/px binned 8x by integer factors, zero-padded, never resized)',
            description="active-region centres and boxes on a full-disk magnetogram (anchor-free, stride 4)",
            reference="CenterNet (Zhou et al. 2019); DetectNet's fine output stride for small objects (Oliveira & Gradvohl 2020)",
            architecture_notes="conv stem, strided conv stages to stride 16 (16-32-64-64), top-down fusion to stride 4, "
            "heads: centre heat map (sigmoid), offset (2), log size (2)",
            init_seed=106,
            # Offsets and log sizes are in output cells (4 px): parity is judged on a 0.05-cell
            # scale there, not relative to values that happen to be near zero.
            extra={"parity_floor": 0.05},
        ),
        # The jet detector: one training run (heliowatch.models.jets.train) writes all three; the
        # daemon serves encoder (once per new frame and tile) + head (over cached features).
        ModelSpec(
            name="jet-convlstm",
            version="0.2.0",
            factory=_jets,
            example_shape=(1, 30, 1, 166, 166),
            dynamic={0: ("batch", 1, 4, 16), 1: ("time", 2, 30, 48)},
            input_name="frames",
            units=_JET_IN,
            plate_scale=_JET_SCALE + ", 24 s cadence, oldest frame first",
            description="coronal jet in a 304 A sequence (full model: encoder on every frame + recurrent head)",
            reference=_JET_REF,
            architecture_notes=_JET_ENC + "; " + _JET_HEAD,
            init_seed=104,
        ),
        ModelSpec(
            name="jet-encoder",
            version="0.2.0",
            factory=_jet_encoder,
            example_shape=(1, 1, 166, 166),
            dynamic={0: ("batch", 1, 64, 256)},
            input_name="tile",
            units=_JET_IN,
            plate_scale=_JET_SCALE + "; one frame per item (tiles of one frame batched)",
            description="per-frame features of a 304 A tile for the jet head (64 non-negative values)",
            reference=_JET_REF,
            architecture_notes=_JET_ENC,
            init_seed=107,
        ),
        ModelSpec(
            name="jet-head",
            version="0.2.0",
            factory=_jet_head,
            example_shape=(1, 30, 64),
            # Windows shorter than 10 frames are refused by the feature cache, not by the graph:
            # the exporter traces with 2 on every dynamic axis, so the profile starts at 2.
            dynamic={0: ("batch", 1, 64, 512), 1: ("time", 2, 30, 48)},
            input_name="features",
            units="jet-encoder features of each frame (dimensionless), oldest first",
            plate_scale="frames 24 s apart (every second 12 s AIA frame); 30 nominal, 10..48 accepted",
            description="coronal jet probability of a tile from its cached per-frame features",
            reference=_JET_REF,
            architecture_notes=_JET_HEAD,
            init_seed=108,
        ),
    )
}


def get(name: str) -> ModelSpec:
    """The spec of a registered model; ModelError with the valid names otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        msg = f"unknown model {name!r}; registered: {', '.join(MODELS)}"
        raise ModelError(msg) from None


def weights_dir() -> Path:
    """Where the shipped weights and cards live (``models/weights``)."""
    return Path(str(resources.files("heliowatch.models").joinpath("weights")))


def resolve_root(name: str, dirs: tuple[Path, ...] | list[Path] = ()) -> Path:
    """The first of ``dirs`` holding a card of ``name`` (retrained weights), else the shipped weights."""
    for d in dirs:
        if (Path(d) / f"{name}.card.json").exists() or (Path(d) / f"{name}.json").exists():
            return Path(d)
    return weights_dir()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_card(name: str, *, root: Path | None = None) -> dict[str, Any]:
    """The model card of ``name`` (ModelError if missing or unreadable)."""
    p = (root or weights_dir()) / f"{name}.card.json"
    try:
        card: dict[str, Any] = json.loads(p.read_text())
    except FileNotFoundError as e:
        msg = f"model {name}: no model card at {p}"
        raise ModelError(msg) from e
    except json.JSONDecodeError as e:
        msg = f"model {name}: card {p} is not valid JSON ({e})"
        raise ModelError(msg) from e
    return card


def load_torch(name: str, *, root: Path | None = None, dtype: Any = None) -> Any:
    """Build the module and load its safetensors weights, checked against the card's SHA-256.

    Returns the module in eval mode (float32 unless ``dtype`` is given).
    """
    import torch  # noqa: PLC0415  (torch: optional heavy backend)
    from safetensors.torch import load_file  # noqa: PLC0415  (torch: optional heavy backend)

    spec = get(name)
    card = load_card(name, root=root)
    wpath = (root or weights_dir()) / card["weights"]["file"]
    if not wpath.exists():
        msg = f"model {name}: weights {wpath} are missing (rebuild with `heliowatch train {name}`)"
        raise ModelError(msg)
    digest = _sha256(wpath)
    if digest != card["weights"]["sha256"]:
        msg = (
            f"model {name}: weights {wpath.name} do not match the card "
            f"(sha256 {digest[:12]}... != {card['weights']['sha256'][:12]}...)"
        )
        raise ModelError(msg)
    module = spec.factory()
    try:
        module.load_state_dict(load_file(str(wpath)))
    except (RuntimeError, KeyError) as e:
        msg = f"model {name}: weights do not fit the architecture ({str(e)[:200]})"
        raise ModelError(msg) from e
    module.eval()
    return module.to(dtype or torch.float32)


def save_weights(name: str, module: Any, card: dict[str, Any], *, root: Path | None = None) -> Path:
    """Write weights as safetensors and the card with their SHA-256; returns the card path."""
    from safetensors.torch import save_file  # noqa: PLC0415  (torch: optional heavy backend)

    spec = get(name)
    root = root or weights_dir()
    root.mkdir(parents=True, exist_ok=True)
    wpath = root / f"{name}.safetensors"
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(wpath), metadata={"name": name, "version": spec.version})
    n_params = sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    card = {
        "name": name,
        "version": spec.version,
        "description": spec.description,
        "architecture": {"class": type(module).__name__, "notes": spec.architecture_notes, "parameters": n_params},
        "reference": spec.reference,
        "input": {
            "name": spec.input_name,
            "shape": list(spec.example_shape),
            "dynamic_axes": {str(k): list(v) for k, v in spec.dynamic.items()},
            "units": spec.units,
            "plate_scale": spec.plate_scale,
        },
        **card,
        "weights": {"file": wpath.name, "format": "safetensors", "sha256": _sha256(wpath)},
    }
    cpath = root / f"{name}.card.json"
    cpath.write_text(json.dumps(card, indent=2) + "\n")
    return cpath


def init_weights(name: str, *, root: Path | None = None) -> Path:
    """Write the seeded initial (untrained) weights of ``name`` with an honest card.

    These are what the runtime, export, parity and speed checks run on until a trained
    model replaces them; their card marks them untrained and not operational.
    """
    import torch  # noqa: PLC0415  (torch: optional heavy backend)

    spec = get(name)
    torch.manual_seed(spec.init_seed)
    module = spec.factory().eval()
    card = {
        "training": {
            "kind": "none",
            "data": f"none: seeded initialisation (torch.manual_seed({spec.init_seed}))",
            "synthetic": False,
            "cutoff_date": None,
            "recipe": f"heliowatch.models.registry.init_weights({name!r})",
        },
        "operational": False,
        "skill": None,
        "known_limits": [
            "untrained: outputs carry no information about the Sun",
            "shipped so the inference runtime (export, backends, parity, speed) is exercised on the real architecture",
        ],
    }
    return save_weights(name, module, card, root=root)
