"""The one cancel type and the one progress callback type of long runs (pipeline, sweep, doctor).

A cancelled run is data, never an exception: ``PipelineRun.cancelled``, ``SweepResult.cancelled``.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Union

from workbench.errors import InvalidInputError, describe

__all__ = ["Cancel", "Progress", "check_cancel", "is_cancelled"]

#: ``threading.Event`` (set it to cancel), a callable returning True once cancelled, or None.
Cancel = Union[threading.Event, Callable[[], bool], None]
#: ``progress(stage, message)``: called as a run's stages start, progress and end.
Progress = Callable[[str, str], Any]


def check_cancel(cancel: Any) -> Cancel:
    """Return ``cancel`` if it is a valid ``Cancel``; raise ``InvalidInputError`` otherwise."""
    if cancel is None or hasattr(cancel, "is_set") or callable(cancel):
        return cancel
    raise InvalidInputError(
        f"cancel must be a threading.Event or a callable returning bool, received {describe(cancel)}."
    )


def is_cancelled(cancel: Cancel) -> bool:
    """True once ``cancel`` (an Event or a callable) says so; False for None."""
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())
