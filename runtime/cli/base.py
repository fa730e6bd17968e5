"""How a command group declares its commands: each command's arguments sit beside the function
that runs it, and the argument names are the function's parameter names — so an argument is
written once in the parser and once as a parameter, and nothing in between."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import re
from collections.abc import Callable
from typing import Any

Handler = Callable[..., Any]  # returns an exit code, or a coroutine that does

#: Every run id argument looks the same.
RUN = "RUN"
RUN_HELP = "the run id (a ULID, printed when the run started; `uet runs` lists them)"
SPEC_HELP = "the phase file (YAML or JSON)"


def command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Handler,
    help: str,
    examples: list[str],
) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


def run_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar=RUN, help=RUN_HELP)


def dispatch(args: argparse.Namespace) -> int:
    """Call the command's function with the arguments its parameters name."""
    handler: Handler = args.handler
    names = inspect.signature(handler).parameters
    result = handler(**{name: getattr(args, name) for name in names if hasattr(args, name)})
    if inspect.iscoroutine(result):
        result = asyncio.run(result)
    return int(result)


def duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``2h`` or ``1d`` → seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; write e.g. 90s, 30m, 2h or 1d"
        )
    scale = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}[match.group(2) or "s"]
    return float(match.group(1)) * scale


def money(text: str) -> float:
    try:
        value = float(text.lstrip("$"))
    except ValueError:
        value = 0.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount of dollars above 0")
    return value
