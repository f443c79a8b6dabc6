"""Hypothesis strategies for hostile input: FITS header edits and data, TOML configs, env overrides.

Shared by the bounded fuzz tests (``tests/pipelines/test_fits_fuzz.py``,
``tests/daemon/test_config_fuzz.py``) and the long run, ``bench/fuzz_bench.py``.
"""

from __future__ import annotations

import json
import math
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from hypothesis import strategies as st

from heliowatch.daemon.config import default_config_text, iter_documented_keys
from tests.hostile_fits import MAGNETOGRAM, Edit

__all__ = [
    "DataSpec",
    "config_documents",
    "config_texts",
    "data_file",
    "data_specs",
    "env_overrides",
    "header_edits",
]

#: Cards a hostile header most likes to break: structure, compression, scaling, geometry, time.
HEADER_KEYS = [
    "SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT", "GCOUNT", "TFIELDS", "TFORM1",
    "ZIMAGE", "ZBITPIX", "ZNAXIS", "ZNAXIS1", "ZNAXIS2", "ZNAXIS3", "ZTILE1", "ZTILE2", "ZCMPTYPE",
    "ZNAME1", "ZVAL1", "ZNAME2", "ZVAL2", "ZNAME3", "ZVAL3", "ZBLANK", "ZQUANTIZ", "BSCALE", "BZERO",
    "BLANK", "DATASUM", "CHECKSUM", "CDELT1", "CDELT2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CROTA2",
    "DSUN_OBS", "RSUN_OBS", "RSUN_REF", "CRLT_OBS", "CRLN_OBS", "HGLN_OBS", "T_REC", "T_OBS", "DATE-OBS",
    "CTYPE1", "CTYPE2", "BUNIT", "CONTENT", "QUALITY", "CAMERA", "END",
]  # fmt: skip

#: Raw FITS value text: odd numbers, huge integers, NaN/inf spellings, strings, garbage.
_RAW_VALUES = [
    "0", "-0", "1", "-1", "2", "3", "4", "7", "8", "16", "32", "-32", "-64", "64", "99", "1024", "2147483647",
    "-2147483648", "4294967296", "9223372036854775808", "9" * 40, "0.0", "-0.0", "1E400", "-1E400", "1E-400",
    "1E300", "1E38", "NAN", "INF", "T", "F", "'nan'", "'NaN'", "'inf'", "'-inf'", "'MISSING'", "''", "'  '",
    "'abc'", "'0x00000400'", "'1E400'", "'RICE_1'", "'GZIP_1'", "'HCOMPRESS_1'", "'PLIO_1'", "'BYTEPIX'",
    "'BLOCKSIZE'", "'BINTABLE'", "'IMAGE'", "'2011.02.14_20:24:34_TAI'", "'9999.99.99_99:99:99_TAI'",
    "'now'", "'HPLN-TAN'", "'CRLN-CEA'", "'Gauss'", "'MAGNETOGRAM'", "(1, 2)", "1.0.0", "'unterminated",
    "''''''", "'\\x00'",
]  # fmt: skip


def _raw_number() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-(2**70), 2**70).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(lambda f: repr(f).upper()),
    )


def header_edits(max_edits: int = 4) -> st.SearchStrategy[list[Edit]]:
    """Lists of card edits (``set``, ``dup``, ``del``) over :data:`HEADER_KEYS` and odd values."""
    value = st.one_of(st.sampled_from(_RAW_VALUES), _raw_number(), st.text(max_size=12).map(lambda s: f"'{s}'"))
    edit = st.tuples(st.sampled_from(["set", "set", "set", "dup", "del"]), st.sampled_from(HEADER_KEYS), value)
    return st.lists(edit, min_size=1, max_size=max_edits)


@dataclass(frozen=True)
class DataSpec:
    """A replacement image for the demo magnetogram's header: type, shape, values, storage."""

    dtype: str
    shape: tuple[int, ...]
    fill: str
    scale: float
    compress: str | None
    bscale: float | None


def data_specs() -> st.SearchStrategy[DataSpec]:
    """Images of odd types, shapes (1-3 axes, thin, tiny), values (NaN, inf, huge) and storage."""
    shape = st.one_of(
        st.tuples(st.integers(1, 96), st.integers(1, 96)),
        st.tuples(st.integers(1, 3), st.integers(1, 4000)),
        st.tuples(st.integers(1, 200)),
        st.tuples(st.integers(1, 3), st.integers(1, 24), st.integers(1, 24)),
    )
    return st.builds(
        DataSpec,
        dtype=st.sampled_from(["uint8", "int16", "int32", "int64", "float32", "float64"]),
        shape=shape,
        fill=st.sampled_from(["noise", "constant", "nan-sprinkled", "inf-sprinkled", "all-nan", "bipole"]),
        scale=st.sampled_from([1.0, 1e3, 1e9, 1e30, 1e300, -1.0]),
        compress=st.sampled_from([None, "RICE_1", "GZIP_1", "GZIP_2", "HCOMPRESS_1", "PLIO_1"]),
        bscale=st.sampled_from([None, None, 1.0, 1e-3, 1e30]),
    )


def _pixels(spec: DataSpec) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(repr(spec).encode()))
    with np.errstate(all="ignore"):
        base = rng.normal(0, 300, spec.shape)
        if spec.fill == "constant":
            base = np.full(spec.shape, 7.0)
        elif spec.fill == "bipole" and len(spec.shape) == 2:
            y, x = np.indices(spec.shape)
            cy, cx = spec.shape[0] / 2, spec.shape[1] / 2
            base = 2500 * (np.exp(-((x - cx + 3) ** 2 + (y - cy) ** 2) / 8) - np.exp(-((x - cx - 3) ** 2 + (y - cy) ** 2) / 8))
        base = base * spec.scale
        if spec.fill == "nan-sprinkled":
            base[rng.random(spec.shape) < 0.3] = np.nan
        elif spec.fill == "inf-sprinkled":
            base[rng.random(spec.shape) < 0.3] = np.inf
        elif spec.fill == "all-nan":
            base[...] = np.nan
        dt = np.dtype(spec.dtype)
        if dt.kind in "iu":
            info = np.iinfo(dt)
            base = np.clip(np.nan_to_num(base, nan=0, posinf=info.max, neginf=info.min), info.min, info.max)
        return base.astype(dt)


def data_file(dest: Path, spec: DataSpec) -> Path:
    """The demo magnetogram's header over :func:`data_specs` pixels, with the disk scaled to fit."""
    data = _pixels(spec)
    src = fits.getheader(MAGNETOGRAM, 1)
    hdr = fits.Header()
    for k in ("CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2", "BUNIT", "CONTENT", "T_REC", "T_OBS", "CROTA2", "DSUN_OBS"):
        hdr[k] = src[k]
    for k in ("CRLT_OBS", "CRLN_OBS", "RSUN_OBS", "QUALITY"):
        hdr[k] = src[k]
    ny, nx = (1, spec.shape[0]) if len(spec.shape) == 1 else spec.shape[-2:]
    side = max(nx, ny)
    hdr["CRPIX1"], hdr["CRPIX2"] = (nx + 1) / 2, (ny + 1) / 2
    hdr["CDELT1"] = hdr["CDELT2"] = float(src["CDELT1"]) * 1024 / side
    if spec.bscale is not None and np.dtype(spec.dtype).kind in "iu":
        hdr["BSCALE"] = spec.bscale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec.compress:
            hdus = [fits.PrimaryHDU(), fits.CompImageHDU(data, hdr, compression_type=spec.compress)]
        else:
            hdus = [fits.PrimaryHDU(data, hdr)]
        fits.HDUList(hdus).writeto(dest, overwrite=True, checksum=True, output_verify="silentfix")
    return dest


# -- configs ---------------------------------------------------------------------------------------
_KEYS = [k for k, _ in iter_documented_keys()]
_SECTIONS = sorted({k.split(".")[0] for k in _KEYS})

_toml_scalar: st.SearchStrategy[Any] = st.one_of(
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", ".", "/", "/proc/x", "/dev/null", "\x00", "n" * 300, "~", "../../..", "sqlite://", "::::",
                     "postgresql://u:p@h:99999/db", "http://", "0.0.0.0", "no-such-host.invalid", "replay", "jsoc"]),
)  # fmt: skip


def _toml_value() -> st.SearchStrategy[Any]:
    return st.recursive(
        _toml_scalar,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
        max_leaves=8,
    )


def _dump_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string (a lone surrogate makes it invalid TOML: fine)
    if isinstance(v, list):
        return "[" + ", ".join(_dump_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_dump_value(x)}" for k, x in v.items()) + "}"


def dump_toml(doc: dict[str, Any]) -> str:
    """A TOML document: top-level tables as ``[section]`` with ``key = value`` lines."""
    out = []
    for section, body in doc.items():
        if isinstance(body, dict):
            out.append(f"[{json.dumps(section)}]")
            out += [f"{json.dumps(k)} = {_dump_value(v)}" for k, v in body.items()]
        else:
            out.insert(0, f"{json.dumps(section)} = {_dump_value(body)}")
    return "\n".join(out) + "\n"


def config_documents() -> st.SearchStrategy[dict[str, Any]]:
    """Config documents over the real sections and keys (and some unknown ones), with any values."""
    real = st.sampled_from(_KEYS).map(lambda k: k.split(".")[-1])
    key = st.one_of(real, real, st.text(max_size=10))
    section = st.one_of(st.sampled_from(_SECTIONS), st.sampled_from(_SECTIONS), st.text(max_size=8))
    body = st.one_of(st.dictionaries(key, _toml_value(), max_size=5), _toml_scalar)
    return st.dictionaries(section, body, max_size=4)


def config_texts() -> st.SearchStrategy[bytes]:
    """Raw config files: random bytes and text, the default config with a line mangled, deep nesting."""
    lines = default_config_text().splitlines()
    mangled = st.tuples(st.integers(0, len(lines) - 1), st.text(max_size=30)).map(
        lambda t: "\n".join([*lines[: t[0]], lines[t[0]].split("=")[0] + "= " + t[1], *lines[t[0] + 1 :]]).encode()
    )
    deep = st.tuples(st.integers(1, 5000), st.sampled_from(["[", "{a = "])).map(
        lambda t: ("x = " + t[1] * t[0] + "1" + ("]" if t[1] == "[" else "}") * t[0]).encode()
    )
    return st.one_of(
        st.binary(max_size=200), st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")), mangled, deep
    )


def env_overrides() -> st.SearchStrategy[dict[str, str]]:
    """``HELIOWATCH_SECTION__KEY`` variables with any text as their value."""
    name = st.one_of(
        st.sampled_from(_KEYS).map(lambda k: "HELIOWATCH_" + k.upper().replace(".", "__")),
        st.text(alphabet="ABCXYZ_", min_size=1, max_size=12).map(lambda s: "HELIOWATCH_" + s),
    )
    value = st.one_of(st.text(max_size=40), st.sampled_from(["inf", "nan", "[" * 3000, "9" * 5000, "{a = 1}", '"\\u0000"']))
    return st.dictionaries(name, value.filter(lambda v: "\x00" not in v), max_size=4)
