"""Layerwise divergence, computed in core (``workbench.core.divergence``); the doctor's name for it."""

from __future__ import annotations

from workbench.core.divergence import Divergence, NodeError, layerwise, module_outputs, node_scopes, value_scopes

__all__ = ["Divergence", "NodeError", "layerwise", "module_outputs", "node_scopes", "value_scopes"]
