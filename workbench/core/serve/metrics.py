"""The server's Prometheus metrics, in a ``CollectorRegistry`` of its own (never the global one), and a parser
that turns the ``/metrics`` text back into a small dict (``Server.metrics()``)."""

from __future__ import annotations

from typing import Any

from workbench.core.serve._deps import require

__all__ = ["ServerMetrics", "parse_metrics"]

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_TIME_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServerMetrics:
    """Request counts by status, batch sizes, queue and compute times, queue depth and dropped requests."""

    def __init__(self) -> None:
        prom = require("prometheus_client")
        self.registry = prom.CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = prom.Counter("wb_requests", "Predict requests answered, by HTTP status", ["status"], registry=r)
        self.batch_size = prom.Histogram("wb_batch_size", "Rows per model run", buckets=_BATCH_BUCKETS, registry=r)
        self.queue_seconds = prom.Histogram("wb_queue_seconds", "Time a request waited in the queue",
                                            buckets=_TIME_BUCKETS, registry=r)
        self.compute_seconds = prom.Histogram("wb_compute_seconds", "Time of one model run (a batch)",
                                              buckets=_TIME_BUCKETS, registry=r)
        self.queue_depth = prom.Gauge("wb_queue_depth", "Requests waiting in the queue", registry=r)
        self.dropped = prom.Counter("wb_dropped", "Requests dropped because their client went away", registry=r)

    def text(self) -> bytes:
        """The Prometheus text exposition of this server's registry."""
        return require("prometheus_client").generate_latest(self.registry)


def parse_metrics(text: str) -> dict[str, Any]:
    """``/metrics`` text -> ``{"requests": {status: n}, "batches", "mean_batch", "queue_ms_mean",
    "compute_ms_mean", "queue_depth", "dropped"}`` (the workbench's own families only)."""
    parser = require("prometheus_client.parser")
    samples: dict[str, float] = {}
    requests: dict[int, int] = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "wb_requests_total":
                requests[int(s.labels.get("status", 0))] = int(s.value)
            elif s.name.startswith("wb_") and not s.labels.get("le"):
                samples[s.name] = float(s.value)

    def mean(prefix: str, scale: float = 1.0) -> float | None:
        count = samples.get(f"{prefix}_count", 0.0)
        return samples.get(f"{prefix}_sum", 0.0) / count * scale if count else None

    return {
        "requests": requests,
        "batches": int(samples.get("wb_batch_size_count", 0)),
        "mean_batch": mean("wb_batch_size"),
        "queue_ms_mean": mean("wb_queue_seconds", 1e3),
        "compute_ms_mean": mean("wb_compute_seconds", 1e3),
        "queue_depth": int(samples.get("wb_queue_depth", 0)),
        "dropped": int(samples.get("wb_dropped_total", 0)),
    }
