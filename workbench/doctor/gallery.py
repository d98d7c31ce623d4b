"""The doctor on its gallery of broken models (``workbench.zoo.broken``): diagnose a case, and say
what the diagnosis got wrong.

    >>> from workbench.zoo import broken
    >>> from workbench.doctor import gallery
    >>> case = broken.get("size_one_batch")
    >>> d = gallery.diagnose_case(case)
    >>> gallery.check(case, d)          # [] when the doctor named the code and the place
"""

from __future__ import annotations

from typing import Any

from workbench.core.case import ModelCase
from workbench.doctor.engine import diagnose
from workbench.doctor.findings import Diagnosis
from workbench.zoo.broken import BrokenCase

__all__ = ["check", "diagnose_case"]


def diagnose_case(case: BrokenCase | ModelCase, **kwargs: Any) -> Diagnosis:
    """``diagnose`` a model case (a ``BrokenCase`` is built first) with its spec, config, tolerance
    and name; ``kwargs`` go to ``diagnose`` (``retry``, ``work_dir``)."""
    model_case = case.build() if isinstance(case, BrokenCase) else case
    return diagnose(model_case.model, model_case.example_inputs, spec=model_case.spec, config=model_case.config,
                    tolerance=model_case.tolerance, name=model_case.name, **kwargs)


def check(case: BrokenCase, diagnosis: Diagnosis) -> list[str]:
    """What ``diagnosis`` gets wrong for ``case`` (empty when it is right): the code missing, an ok
    verdict despite an error finding, or evidence that does not point where ``case.where`` says."""
    finding = diagnosis.finding(case.code)
    if finding is None:
        return [f"no {case.code} finding; got {diagnosis.codes}"]
    problems = []
    if finding.severity == "error" and diagnosis.ok:
        problems.append("the diagnosis is ok despite an error finding")
    for key, want in case.where.items():
        got = finding.evidence.get(key)
        if not (got == want or (isinstance(want, str) and want in str(got))):
            problems.append(f"evidence[{key!r}] is {got!r}, expected {want!r}")
    return problems
