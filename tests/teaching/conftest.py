"""The teaching tests run the checks in smoke mode with their files in one temporary folder."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from workbench.teaching import tutorial


@pytest.fixture(scope="session", autouse=True)
def smoke_teaching(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("teaching-artifacts")
    patch = pytest.MonkeyPatch()
    patch.setenv("WB_ARTIFACTS", str(folder))
    patch.setattr(tutorial, "SMOKE", True)
    patch.setattr(tutorial, "settings", tutorial.SMOKE_SETTINGS)
    yield folder
    patch.undo()
