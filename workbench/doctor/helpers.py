"""``export_with_diagnosis``: ``wb.export`` whose ``ExportError`` carries the doctor's diagnosis."""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from workbench.core.compare import Tolerance
from workbench.core.export import ExportResult, export
from workbench.core.session import SessionConfig
from workbench.core.spec import ExportSpec
from workbench.errors import ExportError


def export_with_diagnosis(
    model: nn.Module,
    example_inputs: Any,
    path: str | os.PathLike[str],
    spec: ExportSpec | None = None,
    *,
    config: SessionConfig | None = None,
    tolerance: Tolerance = "fp32",
    retry: bool = True,
) -> ExportResult:
    """``wb.export``; when it raises ``ExportError``, diagnose the model and raise the same error
    with ``error.diagnosis`` set (its message then ends with the diagnosis)."""
    try:
        return export(model, example_inputs, path, spec)
    except ExportError as err:
        from workbench.doctor.engine import diagnose

        diagnosis = diagnose(model, example_inputs, spec, config=config, tolerance=tolerance, retry=retry)
        err.diagnosis = diagnosis
        raise
