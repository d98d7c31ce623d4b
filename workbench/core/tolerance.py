"""Tolerance presets: how close two outputs must be, as ``(rtol, atol)``.

Add a preset by adding one entry to ``TOLERANCES``; every function that takes ``tolerance=``
accepts its name from then on.
"""

from __future__ import annotations

from typing import Union

from workbench.core._checks import is_number
from workbench.errors import InvalidInputError

__all__ = ["TOLERANCES", "Tolerance", "resolve_tolerance"]

# (rtol, atol) per preset, tightest first. fp32: accumulation-order differences of kernels;
# fp16: 10-bit mantissa; int8: quantization steps of dynamic INT8.
TOLERANCES: dict[str, tuple[float, float]] = {
    "fp32": (1e-4, 1e-5),
    "fp16": (1e-2, 1e-3),
    "int8": (1e-1, 5e-2),
}

#: A preset name (a key of ``TOLERANCES``) or a pair ``(rtol, atol)``.
Tolerance = Union[str, tuple[float, float]]


def resolve_tolerance(tolerance: Tolerance) -> tuple[str, float, float]:
    """``(name, rtol, atol)`` for a preset name or an ``(rtol, atol)`` pair."""
    if isinstance(tolerance, str):
        if tolerance not in TOLERANCES:
            raise InvalidInputError(
                f"Unknown tolerance {tolerance!r}. Use one of {list(TOLERANCES)} or a pair (rtol, atol)."
            )
        rtol, atol = TOLERANCES[tolerance]
        return tolerance, rtol, atol
    if (
        isinstance(tolerance, (tuple, list))
        and len(tolerance) == 2
        and all(is_number(v, 0.0, finite=False) for v in tolerance)
    ):
        rtol, atol = float(tolerance[0]), float(tolerance[1])
        return f"rtol={rtol:g}, atol={atol:g}", rtol, atol
    raise InvalidInputError(
        f"tolerance must be a preset name ({list(TOLERANCES)}) or a pair (rtol, atol) of numbers >= 0, "
        f"received {tolerance!r}."
    )
