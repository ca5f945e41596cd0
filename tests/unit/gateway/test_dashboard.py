"""The Grafana dashboard only queries metrics the gateway and workers expose."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gateway.metrics import GatewayMetrics
from worker.metrics import WorkerMetrics

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy/grafana/pushgate-dashboard.json"


SERIES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exposed() -> set[str]:
    """Every series name the two registries can expose (labelled families have no sample
    until a label set is used, so names come from each family's type)."""
    return {
        family.name + suffix
        for metrics in (GatewayMetrics(), WorkerMetrics())
        for family in metrics.registry.collect()
        for suffix in SERIES[family.type]
    }


def test_every_query_names_an_exposed_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(exprs) >= 14
    queried = {name for expr in exprs for name in re.findall(r"\bpushgate_\w+", expr)}
    assert queried <= exposed()
    assert not exposed_without_panel(queried)


def exposed_without_panel(queried: set[str]) -> set[str]:
    """Metric families no panel shows (each family should appear somewhere)."""
    families = set()
    for metrics in (GatewayMetrics(), WorkerMetrics()):
        families |= {family.name for family in metrics.registry.collect()}
    shown = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in queried}
    return families - shown - {"pushgate_messages_received",
                               "pushgate_connections_opened", "pushgate_worker_jobs_started",
                               "pushgate_worker_fetch_bytes"}  # fmt: skip
