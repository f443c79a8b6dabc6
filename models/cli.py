"""Sub-commands of the models subpackage, registered on the ``heliowatch`` command line."""

from __future__ import annotations

from typing import Any

from heliowatch.daemon.cli import register
from heliowatch.models.flares.cli import add_evaluate_parser, add_train_parser
from heliowatch.models.runtime.cli import add_models_parser
from heliowatch.models.synthetic.cli import add_synth_parser

__all__: list[str] = []


@register
def _synth(sub: Any) -> None:
    add_synth_parser(sub)


@register
def _models(sub: Any) -> None:
    add_models_parser(sub)


register(add_train_parser)
register(add_evaluate_parser)
