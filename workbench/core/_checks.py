"""Small predicates behind the argument checks (each caller writes its own message)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["is_int", "is_number"]


def is_int(value: Any, minimum: int = 0) -> bool:
    """True for an int (not a bool) >= ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def is_number(value: Any, minimum: float = 0.0, *, finite: bool = True) -> bool:
    """True for an int or float (not a bool) >= ``minimum`` (and finite, unless ``finite=False``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value >= minimum and (not finite or math.isfinite(value))
