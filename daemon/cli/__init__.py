"""The ``heliowatch`` command line (the contract in DESIGN.md).

The commands are an explicit list of modules, each with a ``register(subparsers)``; each calls
down into the pipelines and models. Every command and sub-command takes ``--config`` and has a
description (its one-line help when it has no longer one). Bad input (config, files, options)
ends with one line on stderr and exit status 2; an unavailable data source with exit status 3;
never a traceback. Output goes to stdout, logs and errors to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from heliowatch.daemon.cli import (
    backfill,
    emergence,
    evaluate,
    forecast,
    jets,
    models,
    regions,
    rejects,
    run,
    status,
    synth,
    train,
)
from heliowatch.daemon.cli.common import add_config
from heliowatch.daemon.errors import ConfigError
from heliowatch.daemon.logs import configure_logging
from heliowatch.daemon.secrets import mask_text
from heliowatch.daemon.service import heliowatch_version
from heliowatch.models.core.errors import HeliowatchError
from heliowatch.pipelines.errors import SourceUnavailable

__all__ = ["COMMANDS", "build_parser", "main"]

#: The command modules, in the order ``heliowatch --help`` lists them.
COMMANDS = (run, status, rejects, regions, forecast, emergence, jets, backfill, synth, models, train, evaluate)


class _Commands(argparse._SubParsersAction):
    """Sub-commands whose ``--help`` describes them: the one-line help when no description is given."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        text = kwargs.get("help")
        if text and not kwargs.get("description"):
            kwargs["description"] = text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")
        return super().add_parser(name, **kwargs)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose sub-commands (at any depth) are :class:`_Commands`."""

    def add_subparsers(self, **kwargs: Any) -> Any:
        kwargs.setdefault("action", _Commands)
        return super().add_subparsers(**kwargs)


def _commands_of(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    # argparse has no public way to list a parser's sub-commands; these attributes have been
    # stable since Python 3.2.
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [child for a in subs for child in dict.fromkeys(a._name_parser_map.values())]


def _add_config_everywhere(parser: argparse.ArgumentParser) -> None:
    """``--config`` (with its help) on every sub-command that does not declare its own."""
    for child in _commands_of(parser):
        if "--config" not in child._option_string_actions:
            add_config(child)
        _add_config_everywhere(child)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command."""
    p = _Parser(prog="heliowatch", description="Near-real-time SDO monitoring daemon.")
    p.add_argument("--version", action="version", version=f"heliowatch {heliowatch_version()}")
    p.add_argument("--config", metavar="PATH", help="configuration file (default: built-in offline defaults)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    _add_config_everywhere(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``heliowatch`` command."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command != "run":
        # Tools print their results on stdout; their log lines go to stderr, warnings and up.
        configure_logging("warning", "console", stream=sys.stderr)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # The reader went away (`| head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    # The one-line errors may quote a URL (a bad state.url): its password is masked.
    except ConfigError as e:
        print(f"heliowatch: config error: {mask_text(str(e))}", file=sys.stderr)
        return 2
    except SourceUnavailable as e:
        print(f"heliowatch: unavailable: {mask_text(str(e))}", file=sys.stderr)
        return 3
    except HeliowatchError as e:
        print(f"heliowatch: error: {mask_text(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
