"""The export doctor: why an export fails or drifts, and the fix, verified where it can be applied.

    >>> from workbench.doctor import diagnose
    >>> d = diagnose(model, example_inputs, spec=spec)
    >>> d.ok, d.codes          # (False, ['DYN001'])
    >>> d.findings[0].retry    # the fix applied and re-checked
    >>> d.to_pandas()          # one row per finding

Codes are listed in ``CODES`` (and CODES.md beside this module). The broken models the doctor is
tested on live in ``workbench.zoo.broken``; ``gallery.diagnose_case`` and ``gallery.check`` run them.
"""

from __future__ import annotations

from workbench.doctor.attempt import Attempt, Setting
from workbench.doctor.bisect import Bisection, bisect_optimizations
from workbench.doctor.codes import CODES, CodeInfo, code_info
from workbench.doctor.divergence import Divergence, NodeError, layerwise
from workbench.doctor.engine import diagnose, export_with_diagnosis
from workbench.doctor.findings import Diagnosis, Finding, Retry

__all__ = [
    "CODES", "Attempt", "Bisection", "CodeInfo", "Diagnosis", "Divergence", "Finding", "NodeError", "Retry",
    "Setting", "bisect_optimizations", "code_info", "diagnose", "export_with_diagnosis", "layerwise",
]
