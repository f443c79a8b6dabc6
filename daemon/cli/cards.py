"""Model cards as readable text (``heliowatch models list``): one line per fact, skill as scores."""

from __future__ import annotations

from typing import Any

__all__ = ["card_lines", "skill_lines"]

#: Skill-score keys printed in capitals (the names the docs and papers use).
_SCORES = {"tss", "hss", "bss", "auc", "f1"}


def _label(key: str) -> str:
    return key.upper() if key in _SCORES else key.replace("_", " ")


def _value(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return {True: "yes", False: "no", None: "-"}[v]
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, bool | int | float)


def _is_mean_std(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == {"mean", "std"} and all(_is_scalar(x) for x in v.values())


def _flat(d: dict[str, Any]) -> str:
    """The scalar entries of ``d`` on one line: ``TSS 0.586, HSS 0.593, threshold 0.500``."""
    parts = []
    for k, v in d.items():
        if _is_mean_std(v):
            parts.append(f"{_label(k)} {_value(v['mean'])} ± {_value(v['std'])}")
        elif _is_scalar(v):
            parts.append(f"{_label(k)} {_value(v)}")
    return ", ".join(parts)


def _walk(d: dict[str, Any], path: list[str], indent: str) -> list[str]:
    head = " / ".join(path)
    lines: list[str] = []
    flat = _flat(d)
    if flat:
        lines.append(f"{indent}{head + ': ' if head else ''}{flat}")
    for k, v in d.items():
        if isinstance(v, str):
            lines.append(f"{indent}{' / '.join([*path, _label(k)])}: {v}")
        elif isinstance(v, dict) and not _is_mean_std(v):
            lines += _walk(v, [*path, _label(k)], indent)
        elif isinstance(v, list):
            rows = [x for x in v if isinstance(x, dict)]
            if rows:
                lines.append(f"{indent}{' / '.join([*path, _label(k)])}:")
                lines += [f"{indent}  {_flat(x)}" for x in rows]
            else:
                lines.append(f"{indent}{' / '.join([*path, _label(k)])}: {', '.join(_value(x) for x in v)}")
    return lines


def skill_lines(skill: Any, indent: str = "    ") -> list[str]:
    """A card's ``skill`` as readable lines (scores with their names, nested results by path).

    Parameters
    ----------
    skill : dict, str or None
        The card's ``skill`` entry, whatever its shape.
    indent : str
        Prefix of every line.

    Returns
    -------
    list of str
        ``["none recorded"]`` (indented) for an untrained model.
    """
    if not skill:
        return [f"{indent}none recorded"]
    if isinstance(skill, dict):
        return _walk(skill, [], indent)
    return [f"{indent}{_value(skill)}"]


def card_lines(card: dict[str, Any]) -> list[str]:
    """One model card (a network's or a feature model's) as the lines ``models list`` prints.

    Parameters
    ----------
    card : dict
        The card, with ``onnx_export`` added by the caller.

    Returns
    -------
    list of str
        The name line first, then indented facts; missing fields are left out.
    """
    t = card.get("training", {})
    kind = t.get("kind", "?") + (" (synthetic)" if t.get("synthetic") else "")
    lines = [f"{card['name']} {card.get('version', '?')}: {card.get('description', '')}"]
    arch = card.get("architecture") or {}
    if arch:
        size = f" ({arch['parameters']:,} parameters)" if isinstance(arch.get("parameters"), int) else ""
        detail = f", {arch['kind']}" if arch.get("kind") else ""
        ref = f" - {card['reference']}" if card.get("reference") else ""
        lines.append(f"  architecture: {arch.get('class', '?')}{detail}{size}{ref}")
    inp = card.get("input") or {}
    if inp:
        shape = f"{inp['shape']} " if inp.get("shape") else ""
        scale = f"; {inp['plate_scale']}" if inp.get("plate_scale") else ""
        lines.append(f"  input: {shape}{inp.get('units', '')}{scale}")
    lines.append(f"  training: {kind}; data: {t.get('data')}; cutoff: {t.get('cutoff_date')}")
    lines.append(f"  operational: {_value(bool(card.get('operational')))}")
    lines.append("  skill:")
    lines += skill_lines(card.get("skill"))
    lines += [f"  limit: {lim}" for lim in card.get("known_limits", [])]
    ox = card.get("onnx_export") or {}
    if ox.get("file"):
        lines.append(f"  file: {ox['file']} (a feature model: no ONNX export)")
    elif ox:
        lines.append(
            f"  onnx: {ox.get('path') if ox.get('verified') else 'not exported/verified (' + str(ox.get('reason')) + ')'}"
        )
    return lines
