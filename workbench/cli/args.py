"""Arguments several commands share: the flags (one spelling each) and their parsing, with clear
errors. Flags follow the workbench's vocabulary: ``--out`` (a file written), ``--work-dir`` (a
folder of scratch files), ``--batch``/``--seq``, ``--opt-level``, ``--tolerance``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from workbench.cli.loader import FORMS
from workbench.core.session import OPT_LEVELS, SessionConfig
from workbench.core.spec import ExportSpec
from workbench.core.tolerance import TOLERANCES, Tolerance
from workbench.errors import InvalidInputError

#: The opset the dynamo exporter translates at; lower ones are converted down after the export.
DYNAMO_MIN_OPSET = 18


def positive_int(text: str) -> int:
    """argparse type: an int >= 1 (a bad value is a usage error naming the flag)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, received {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, received {value}")
    return value


def add_model(p: argparse.ArgumentParser, *, what: str = "the PyTorch model") -> None:
    p.add_argument("model", metavar="MODEL", help=f"{what}: {FORMS}")


def add_smoke(p: argparse.ArgumentParser) -> None:
    p.add_argument("--smoke", action="store_true", help="build a zoo model at its small (smoke) size")


def add_sizes(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=positive_int, help="batch size of the inputs (default: the example's)")
    p.add_argument("--seq", type=positive_int, help="sequence length of the inputs (default: the example's)")


def add_tolerance(p: argparse.ArgumentParser, *, default: str = "the model case's, fp32 for most") -> None:
    p.add_argument("--tolerance", help=f"{', '.join(TOLERANCES)} or RTOL,ATOL (default: {default})")


def cache_work_dir(name: str) -> Path:
    """A default ``--work-dir``: the folder ``name`` in the per-user cache (created, private to the user)."""
    from workbench.core._workdirs import user_cache_dir

    return user_cache_dir(name)


def add_work_dir(p: argparse.ArgumentParser, *, default: Path | None, what: str) -> None:
    """``--work-dir``. A ``default`` in the shared temp folder (e.g. ``/tmp/onnx-workbench``), where another
    user could create it first, is moved into the per-user cache (``cache_work_dir``)."""
    if default is not None and _in_shared_temp(Path(default)):
        name = Path(default).name
        default = cache_work_dir("work" if name in ("", "onnx-workbench") else name)
        what += f" (default {default})"
    p.add_argument("--work-dir", type=Path, default=default, metavar="DIR", help=what)


def _in_shared_temp(path: Path) -> bool:
    import tempfile

    shared = {Path(tempfile.gettempdir()).resolve(), Path("/tmp").resolve(), Path("/var/tmp").resolve()}
    return path.resolve().parent in shared or path.resolve() in shared


def add_spec(p: argparse.ArgumentParser) -> None:
    """--exporter, --opset, --dynamic: changes to the model case's export spec."""
    p.add_argument("--exporter", choices=("dynamo", "torchscript"), help="default: the model's spec (dynamo)")
    p.add_argument("--opset", type=positive_int, help=f"ONNX opset (dynamo translates at {DYNAMO_MIN_OPSET} and converts lower ones down)")
    p.add_argument("--dynamic", nargs="+", action="extend", metavar="NAME:DIM:SYMBOL", default=None,
                   help="dynamic axes replacing the spec's, e.g. input_ids:0:batch input_ids:1:seq")


def add_session(p: argparse.ArgumentParser) -> None:
    """--provider, --opt-level, --threads: the ONNX Runtime session config."""
    p.add_argument("--provider", action="append", default=[], metavar="NAME",
                   help="an execution provider, in priority order (repeatable)")
    p.add_argument("--opt-level", choices=tuple(OPT_LEVELS), help="ONNX Runtime graph optimization level")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (0: ONNX Runtime's choice)")


def parse_dynamic(items: Sequence[str]) -> dict[str, dict[int, str]]:
    """``["input_ids:0:batch", "input_ids:1:seq"]`` -> ``{"input_ids": {0: "batch", 1: "seq"}}``."""
    axes: dict[str, dict[int, str]] = {}
    for item in items:
        parts = item.split(":")
        if len(parts) != 3 or not parts[0] or not parts[1].isdigit() or not parts[2].isidentifier():
            raise InvalidInputError(f"--dynamic takes NAME:DIM:SYMBOL such as input_ids:0:batch, received {item!r}.")
        axes.setdefault(parts[0], {})[int(parts[1])] = parts[2]
    return axes


def parse_tolerance(text: str) -> Tolerance:
    """A preset name (fp32, fp16, int8) or ``RTOL,ATOL``."""
    if text in TOLERANCES:
        return text
    try:
        rtol, atol = (float(p) for p in text.split(","))
    except ValueError:
        raise InvalidInputError(
            f"--tolerance must be one of {list(TOLERANCES)} or RTOL,ATOL such as 1e-3,1e-5; received {text!r}."
        ) from None
    if rtol < 0 or atol < 0:
        raise InvalidInputError(f"--tolerance RTOL,ATOL must both be >= 0, received {text!r}.")
    return (rtol, atol)


def tolerance_from(args: argparse.Namespace, tolerance: Tolerance) -> Tolerance:
    """--tolerance if given, else ``tolerance`` (the model case's)."""
    return parse_tolerance(args.tolerance) if args.tolerance else tolerance


def spec_from(args: argparse.Namespace, spec: ExportSpec | None) -> ExportSpec | None:
    """``spec`` with the --exporter/--opset/--dynamic changes (made to the default spec where the
    case has none); choosing the dynamo exporter without --opset raises an older opset to 18."""
    base = spec or ExportSpec()
    changes: dict[str, Any] = {}
    if args.exporter:
        changes["exporter"] = args.exporter
        if args.exporter == "dynamo" and args.opset is None and base.opset < DYNAMO_MIN_OPSET:
            changes["opset"] = DYNAMO_MIN_OPSET
    if args.opset is not None:
        changes["opset"] = args.opset
    if args.dynamic is not None:
        changes["dynamic_axes"] = parse_dynamic(args.dynamic)
    return base.replace(**changes) if changes else spec


def config_from(args: argparse.Namespace, config: SessionConfig | None) -> SessionConfig:
    """``config`` (or the default config) with the --provider/--opt-level/--threads changes."""
    config = config or SessionConfig()
    changes: dict[str, Any] = {}
    if args.provider:
        changes["providers"] = tuple(args.provider)
    if args.opt_level:
        changes["opt_level"] = args.opt_level
    if args.threads is not None:
        changes["intra_op_threads"] = args.threads
    return config.replace(**changes) if changes else config
