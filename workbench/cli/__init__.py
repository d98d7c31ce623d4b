"""``onnx-workbench`` (also ``python -m workbench``): tour / export / inspect / compare / bench / doctor / tune / serve.

Exit codes: 0 ok; 1 a check failed (comparison, probe, gate, checker, a failed stage or export, a
diagnosis with findings); 2 bad usage (argparse errors, and ``InvalidInputError`` from bad input:
the message, no traceback).

Each verb is a module of this package with a ``COMMAND``; more subcommands come in through
``register(Command(name, help, add_arguments, run))``. A MODEL argument is read by the one loader,
``workbench.cli.loader``: it imports and runs the code it names.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from workbench.cli import bench, compare, doctor, export, inspect, serve, tour, tune
from workbench.cli.command import (
    COMMANDS,
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    Command,
    register,
    say,
)
from workbench.cli.loader import HELP as EPILOG
from workbench.errors import InvalidInputError, WorkbenchError

__all__ = ["COMMANDS", "EXIT_CHECK_FAILED", "EXIT_OK", "EXIT_USAGE", "Command", "build_parser", "main", "register"]

for _module in (tour, export, inspect, compare, bench, doctor, tune, serve):
    register(_module.COMMAND)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every registered subcommand."""
    from workbench import __version__

    parser = argparse.ArgumentParser(prog=PROG, description="The PyTorch -> ONNX -> ONNX Runtime workbench.",
                                     epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS.values():
        p = sub.add_parser(command.name, help=command.help, description=command.help, epilog=EPILOG)
        command.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 a check failed, 2 bad usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command].run(args)
    except InvalidInputError as exc:
        say(f"{PROG} {args.command}: error: {exc}")
        return EXIT_USAGE
    except WorkbenchError as exc:
        say(f"{PROG} {args.command}: failed: {exc}")
        return EXIT_CHECK_FAILED
    except KeyboardInterrupt:
        say(f"{PROG} {args.command}: interrupted")
        return 130
    except BrokenPipeError:  # stdout closed early (`onnx-workbench inspect m.onnx | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
