"""The export doctor: why an export fails or drifts, and the fix, verified where it can be applied.

    >>> import workbench as wb
    >>> d = wb.diagnose(model, example_inputs, spec)
    >>> d.ok, d.codes          # (False, ['DYN001'])
    >>> d.findings[0].retry    # the fix applied and re-checked
    >>> d.to_pandas()          # one row per finding

Codes are listed in ``CODES`` (and CODES.md beside this module). ``gallery`` holds broken
models, one per problem, for tests and notebooks.
"""

from __future__ import annotations

from workbench.doctor.attempt import Attempt, Setting
from workbench.doctor.bisect import Bisection, bisect_optimizations
from workbench.doctor.codes import CODES, CodeInfo, code_info
from workbench.doctor.divergence import Divergence, NodeError, layerwise
from workbench.doctor.engine import diagnose
from workbench.doctor.findings import Diagnosis, Finding, Retry
from workbench.doctor.helpers import export_with_diagnosis

__all__ = [
    "CODES", "Attempt", "Bisection", "CodeInfo", "Diagnosis", "Divergence", "Finding", "NodeError", "Retry",
    "Setting", "bisect_optimizations", "code_info", "diagnose", "export_with_diagnosis", "layerwise",
]
