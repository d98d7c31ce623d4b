"""The subcommand registry and the exit codes shared by every ``onnx-workbench`` verb."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable

PROG = "onnx-workbench"
#: 0 ok; 1 a check failed (comparison, probe, gate, checker, a failed stage, a diagnosis with
#: findings); 2 bad usage (argparse errors and ``InvalidInputError``: the message, no traceback).
EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, one-line help, how it adds its arguments, and what it runs."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def register(command: Command) -> Command:
    """Add a subcommand (a name already taken is replaced, so re-imports are harmless)."""
    COMMANDS[command.name] = command
    return command


def say(message: str) -> None:
    """Progress and diagnostics go to stderr; stdout carries only the results."""
    print(message, file=sys.stderr, flush=True)


def exit_code(ok: bool) -> int:
    """``EXIT_OK`` when ``ok``, else ``EXIT_CHECK_FAILED``."""
    return EXIT_OK if ok else EXIT_CHECK_FAILED
