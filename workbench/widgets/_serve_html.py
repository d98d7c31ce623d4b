"""The Serve panel's HTML: the server line, the load levels table and the metrics table (every string
from a model, a file, a server or an exception escaped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from workbench.core._format import esc

_CELL = "padding: 1px 10px 1px 0; text-align: right; white-space: nowrap;"
_HEAD = ("concurrency", "requests", "ok", "failed (status: count)", "requests/s", "p50 (ms)", "p95 (ms)",
         "p99 (ms)", "mean batch")


def server_html(server: Any, max_batch: int, max_wait_ms: float) -> str:
    """"Serving model.onnx (CPU/all) at <url> with max_batch 16, max_wait 5 ms", and the endpoints."""
    url = esc(str(server.url))
    config = getattr(server, "config", None)
    label = config.label() if config is not None and hasattr(config, "label") else "default config"
    name = Path(str(getattr(server, "onnx_model", "") or "model")).name
    links = " ".join(f"<code>{esc(p)}</code>" for p in ("POST /v1/predict", "GET /v1/health", "GET /v1/metadata",
                                                        "GET /metrics"))
    return (f"<div style='font-size: 13px; margin: 2px 0;'>Serving <code>{esc(name)}</code> "
            f"(<code>{esc(label)}</code>) at <a href='{url}/v1/metadata' target='_blank' rel='noopener'>"
            f"<code>{url}</code></a> with max_batch {int(max_batch)}, max_wait {float(max_wait_ms):g} ms."
            f"<br><span style='color: #57606a;'>{links}</span></div>")


def _errors_text(errors: Mapping[Any, Any] | None) -> str:
    if not errors:
        return "0"
    return ", ".join(f"{esc(status)}: {int(count):,}" for status, count in sorted(errors.items(), key=lambda kv: str(kv[0])))


def _ms(value: Any, ok: int) -> str:
    return f"{float(value):.2f}" if ok and value is not None and value == value else "-"


def levels_table_html(result: Any) -> str:
    """One row per load level, in order of concurrency; failed requests in red with their status."""
    rows = []
    for lv in sorted(result.levels, key=lambda lv: lv.concurrency):
        failed = _errors_text(lv.errors)
        style = " style='color: #cf222e;'" if lv.errors and sum(lv.errors.values()) else ""
        batch = "-" if lv.mean_batch is None else f"{float(lv.mean_batch):.1f}"
        cells = (f"{lv.concurrency}", f"{lv.requests:,}", f"{lv.ok:,}", f"<span{style}>{failed}</span>",
                 f"{lv.throughput_rps:,.1f}", _ms(lv.p50_ms, lv.ok), _ms(lv.p95_ms, lv.ok), _ms(lv.p99_ms, lv.ok), batch)
        rows.append("<tr>" + "".join(f"<td style='{_CELL}'>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th style='{_CELL}'>{h}</th>" for h in _HEAD)
    cpu = getattr(result, "client_cpu_s", None)
    note = f"{len(result.levels)} levels" + (", cancelled" if result.cancelled else "")
    if cpu is not None:
        note += f"; the load generator used {float(cpu):.1f} s of CPU (on this machine, beside the server)"
    return (f"<div class='wb-serve-summary' style='margin: 4px 0; font-size: 12px; color: #57606a;'>{esc(note)}</div>"
            f"<div style='overflow-x: auto;'><table class='wb-serve-rows' style='font-size: 12px;'><thead><tr>{head}"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def _flatten(metrics: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        name = f"{prefix} ({key})" if prefix and isinstance(key, int) else f"{prefix}{key}"
        if isinstance(value, Mapping):
            items.extend(_flatten(value, name))
        else:
            items.append((name, value))
    return items


def _value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return esc(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.3g}"
    return esc(value)


def metrics_html(metrics: Mapping[str, Any]) -> str:
    """The server's ``metrics()`` (nested dicts flattened to "a / b") as a two-column table."""
    rows = "".join(f"<tr><td style='padding: 1px 12px 1px 0;'>{esc(name)}</td><td style='{_CELL}'>{_value(v)}</td></tr>"
                   for name, v in _flatten(metrics))
    return ("<details open class='wb-serve-metrics-toggle' style='margin: 4px 0;'><summary style='cursor: pointer; "
            "color: #57606a;'>Server metrics (from the server itself; <code>GET /metrics</code> has them for "
            f"Prometheus)</summary><table style='font-size: 12px;'><tbody>{rows}</tbody></table></details>")
