"""Gallery diagnoses, computed once per test session and shared by the doctor's tests."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import pytest

from workbench.doctor import Diagnosis, gallery
from workbench.zoo import broken


@pytest.fixture(scope="session")
def diagnosed(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Diagnosis]:
    """diagnosed(case_name) -> the Diagnosis of that broken zoo case (with retries), cached per session."""
    root: Path = tmp_path_factory.mktemp("doctor")
    done: dict[str, Diagnosis] = {}

    def _run(name: str) -> Diagnosis:
        if name not in done:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                done[name] = gallery.diagnose_case(broken.get(name), work_dir=root / name)
        return done[name]

    return _run
