"""``InstrumentedSession``: an ONNX Runtime session whose every ``run`` is timed into a latency histogram.

Reusable outside the server (a batch job, a notebook): the histogram lives in a ``CollectorRegistry`` of the
caller's or a new private one, never prometheus-client's global registry, so two sessions never collide.
``run`` is thread-safe as ONNX Runtime's is.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Mapping, Sequence

import numpy as np

from workbench.core.serve._deps import require

__all__ = ["InstrumentedSession"]

_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class InstrumentedSession:
    """Wraps ``session`` (an ``InferenceSession``); ``run`` records seconds per call labelled by batch rows."""

    def __init__(self, session: Any, *, registry: Any = None, name: str = "model") -> None:
        prom = require("prometheus_client")
        self.session = session
        self.name = name
        self.registry = registry if registry is not None else prom.CollectorRegistry()
        self.latency = prom.Histogram("wb_session_run_seconds", "Seconds per InferenceSession.run call",
                                      ["model"], buckets=_BUCKETS, registry=self.registry)
        self.failures = prom.Counter("wb_session_failures", "InferenceSession.run calls that raised", ["model"],
                                     registry=self.registry)
        self._lock = threading.Lock()
        self._times: list[float] = []

    def run(self, output_names: Sequence[str] | None, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """``session.run(output_names, feed)``, timed."""
        start = time.perf_counter()
        try:
            outputs = self.session.run(output_names, dict(feed))
        except Exception:
            self.failures.labels(self.name).inc()
            raise
        seconds = time.perf_counter() - start
        self.latency.labels(self.name).observe(seconds)
        with self._lock:
            self._times.append(seconds)
            if len(self._times) > 10000:
                del self._times[:5000]
        return outputs

    def get_inputs(self) -> Any:
        return self.session.get_inputs()

    def get_outputs(self) -> Any:
        return self.session.get_outputs()

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self._times)

    def percentiles(self, qs: Sequence[float] = (50, 95, 99)) -> dict[float, float]:
        """Latency percentiles in ms over the recent calls (the last 5000 to 10000); empty before the first."""
        with self._lock:
            times = list(self._times)
        return {q: float(np.percentile(times, q)) * 1e3 for q in qs} if times else {}

    def __repr__(self) -> str:
        p = self.percentiles((50,))
        tail = f", p50 {p[50]:.2f} ms" if p else ""
        return f"InstrumentedSession({self.name!r}, {self.calls} calls{tail})"
