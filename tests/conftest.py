"""Shared fixtures: tiny zoo models exported once per test session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest
import torch

import workbench as wb

torch.manual_seed(0)
ARTIFACTS = Path(os.environ.get("WB_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def export_zoo(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., wb.ExportResult]:
    """export_zoo(name, exporter='dynamo', batch=2) -> ExportResult of the smoke zoo model (cached per session)."""
    root = tmp_path_factory.mktemp("exports")
    done: dict[tuple[str, str, int], wb.ExportResult] = {}

    def _export(name: str, exporter: str = "dynamo", batch: int = 2) -> wb.ExportResult:
        key = (name, exporter, batch)
        if key not in done:
            zm = wb.zoo.get(name, smoke=True)
            spec = zm.spec if exporter == "dynamo" else zm.spec.replace(exporter="torchscript", opset=17)
            done[key] = wb.export(zm.model, zm.make_inputs(batch=batch), root / f"{name}_{exporter}_b{batch}.onnx", spec)
        return done[key]

    return _export


@pytest.fixture(scope="session")
def tc_smoke() -> wb.zoo.ZooModel:
    return wb.zoo.get("text_classifier", smoke=True)


@pytest.fixture(scope="session")
def mlp() -> wb.zoo.ZooModel:
    return wb.zoo.get("mlp", smoke=True)
