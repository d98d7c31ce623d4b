"""Traits that take what a user types or passes, checked when they are set (``@traitlets.validate``
in the panels calls these): a bad value is refused at once with the core's message, never later on
a worker thread."""

from __future__ import annotations

import os
from typing import Any, Sequence

import traitlets

from workbench.core.tolerance import Tolerance, resolve_tolerance
from workbench.errors import InvalidInputError


class OnnxFile(traitlets.Unicode):
    """The path of an ONNX file as text (``''`` for none); a ``pathlib.Path`` is taken too."""

    info_text = "the path of an ONNX file (str or os.PathLike), or ''"

    def validate(self, obj: Any, value: Any) -> str:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        return str(super().validate(obj, value))


def refused(exc: Exception) -> traitlets.TraitError:
    """The ``TraitError`` a validator raises for ``exc``, with its message."""
    error = traitlets.TraitError(str(exc))
    error.__cause__ = exc
    return error


def checked_tolerance(value: Any) -> Tolerance:
    """``value`` if it is a tolerance preset name or an ``(rtol, atol)`` pair (as a tuple)."""
    try:
        resolve_tolerance(value)
    except InvalidInputError as exc:
        raise refused(exc) from exc
    return tuple(value) if isinstance(value, list) else value  # type: ignore[return-value]


def checked_size(value: int | None, what: str) -> int | None:
    """``value`` if it is ``None`` or an int >= 1."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise traitlets.TraitError(f"{what} must be an int >= 1 (or None), received {value!r}.")
    return value


def read_grid_field(panel: Any, field: Any) -> None:
    """Set ``panel.batch_sizes`` (from ``panel.batch_field``) or ``panel.seq_lens`` (from ``panel.seq_field``)
    from the grid field that was edited; ``InvalidInputError`` when it does not parse."""
    if field is panel.batch_field:
        panel.batch_sizes = parse_sizes(field.value, "batch sizes")
    else:
        panel.seq_lens = parse_sizes(field.value, "seq lengths", allow_none=True)


def parse_sizes(value: str | Sequence[int | None], what: str, *, allow_none: bool = False) -> list[int | None]:
    """A grid of sizes from text (``"1, 2, 4"``; ``"none"`` where ``allow_none``) or a sequence,
    without repeats; ``InvalidInputError`` for anything else."""
    if isinstance(value, str):
        items: list[Any] = [t.strip() for t in value.replace(";", ",").split(",") if t.strip()]
        if allow_none and [t.lower() for t in items] in ([], ["none"], ["-"]):
            return [None]
        try:
            items = [int(t) for t in items]
        except ValueError:
            items = []
    else:
        items = list(value)
    if allow_none and items == [None]:
        return [None]
    if not items or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in items):
        hint = " ('none' for a model without a sequence axis)" if allow_none else ""
        raise InvalidInputError(f"{what} must be a comma-separated list of ints >= 1, such as '1, 2, 4'{hint}, "
                                f"received {value!r}.")
    return list(dict.fromkeys(items))


def checked_sizes(value: Any, what: str, *, allow_none: bool = False) -> list[int | None]:
    """``parse_sizes`` for a validator: a ``TraitError`` instead of an ``InvalidInputError``."""
    try:
        return parse_sizes(value, what, allow_none=allow_none)
    except InvalidInputError as exc:
        raise refused(exc) from exc


def format_sizes(sizes: Sequence[int | None]) -> str:
    """The text field's form of a grid: ``[1, 2]`` -> ``"1, 2"``, ``[None]`` -> ``"none"``."""
    return "none" if list(sizes) == [None] else ", ".join(str(s) for s in sizes)
