"""What the command modules share: the configuration, logging, a progress bar, option helpers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from heliowatch.daemon.config import Config, load_config
from heliowatch.daemon.logs import configure_logging

__all__ = ["add_config", "config_of", "progress_bar", "setup_logging"]


def add_config(p: argparse.ArgumentParser) -> None:
    """``--config PATH`` on a sub-command (the top-level one is kept when not repeated)."""
    p.add_argument(
        "--config", metavar="PATH", default=argparse.SUPPRESS, help="configuration file (default: built-in offline defaults)"
    )


def config_of(args: argparse.Namespace) -> Config:
    """The validated configuration named by ``--config`` (or the defaults)."""
    path = getattr(args, "config", None)
    return load_config(Path(path) if path else None)


def setup_logging(cfg: Config) -> None:
    """The daemon's logging as configured."""
    lg = cfg.logging
    configure_logging(lg.level, lg.format, journald_prefix=lg.journald_priority_prefix)


def progress_bar(label: str) -> Callable[[int, int, str], None]:
    """A ``(done, total, what)`` callback drawing a tqdm bar on stderr (a new bar when ``total`` changes)."""
    bar: dict[str, Any] = {}

    def cb(done: int, total: int, what: str = "") -> None:
        if "b" not in bar or bar["b"].total != total:  # a new phase (e.g. synthesising, then epochs)
            if "b" in bar:
                bar["b"].close()
            bar["b"] = tqdm(total=total, desc=label, file=sys.stderr, leave=False)
        bar["b"].set_postfix_str(what)
        bar["b"].update(done - bar["b"].n)

    return cb
