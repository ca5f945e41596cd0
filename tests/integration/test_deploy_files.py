"""There is no Docker engine here: the compose file and the manifests are validated offline
against their schemas, and their shutdown numbers checked against the gateway's drain."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.server import CLOSE_WAIT_SECONDS, SHUTDOWN_TIMEOUT_SECONDS
from pushgate.broker.keys import QUEUE_NAME
from tests.nginx import NGINX_CONF, find_nginx, loopback_conf, upstreams

ROOT = Path(__file__).resolve().parents[2]
# What a gateway may take after its drain window: close answers, then uvicorn's shutdown.
AFTER_WINDOW = CLOSE_WAIT_SECONDS + SHUTDOWN_TIMEOUT_SECONDS
# On Kubernetes, that and the lifespan's shutdown and a slow node's slack.
GRACE_MARGIN = 10.0


def test_compose_file_matches_the_compose_spec() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    completed = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(ROOT / "docker-compose.yml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


OVERLAYS = ("dev", "production")
# Kinds of the CRDs the production overlay uses; kubernetes-validate has no schema for them.
CRD_KINDS = {"ScaledObject", "TriggerAuthentication", "HTTPRoute"}


@functools.cache
def rendered(overlay: str) -> str:
    """``kubectl kustomize`` of an overlay: what ``kubectl apply -k`` would apply."""
    completed = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return completed.stdout


def documents(overlay: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered(overlay)) if doc]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_overlays_render_and_are_valid_strictly(overlay: str, tmp_path: Path) -> None:
    validator = Path(sys.executable).parent / "kubernetes-validate"
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(rendered(overlay))
    completed = subprocess.run(
        [str(validator), "--strict", "--quiet", str(manifest)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    unchecked = {line.split("kind ")[1].split()[0] for line in completed.stdout.splitlines()
                 if "Couldn't find schema" in line}  # fmt: skip
    assert unchecked <= CRD_KINDS


def test_production_crds_have_their_required_fields() -> None:
    docs = documents("production")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    deployments = {d["metadata"]["name"] for d in by_kind["Deployment"]}
    services = {d["metadata"]["name"]: d for d in by_kind["Service"]}
    auths = {d["metadata"]["name"] for d in by_kind["TriggerAuthentication"]}
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d["spec"] for d in by_kind["ScaledObject"]}
    assert set(scaled) == deployments == {"pushgate-gateway", "pushgate-worker"}
    for spec in scaled.values():
        assert spec["triggers"] and all(t["type"] and t["metadata"] for t in spec["triggers"])
        for trigger in spec["triggers"]:
            if "authenticationRef" in trigger:
                assert trigger["authenticationRef"]["name"] in auths
    behavior = scaled["pushgate-gateway"]["advanced"]["horizontalPodAutoscalerConfig"]
    assert behavior["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 600
    assert "pushgate_connections" in scaled["pushgate-gateway"]["triggers"][0]["metadata"]["query"]
    assert scaled["pushgate-worker"]["triggers"][0]["metadata"]["listName"] == QUEUE_NAME
    (route,) = by_kind["HTTPRoute"]
    assert route["spec"]["parentRefs"]
    for rule in route["spec"]["rules"]:
        for backend in rule["backendRefs"]:
            ports = {p["port"]: p for p in services[backend["name"]]["spec"]["ports"]}
            assert ports[backend["port"]]["appProtocol"] == "kubernetes.io/ws"


def test_production_spreads_and_guards_its_pods() -> None:
    docs = documents("production")
    kinds = {doc["kind"] for doc in docs}
    assert {"PodDisruptionBudget", "NetworkPolicy"} <= kinds
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    web = [
        rule
        for rule in policy["spec"]["egress"]
        if {"port": 443, "protocol": "TCP"} in rule["ports"]
    ]
    (rule,) = web
    denied = {block for to in rule["to"] for block in to["ipBlock"]["except"]}
    assert {"10.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"} <= denied
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        assert deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]


def _gateway_pod(overlay: str) -> dict[str, Any]:
    (deployment,) = [
        d for d in documents(overlay)
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "pushgate-gateway"
    ]  # fmt: skip
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_grace_period_covers_pre_stop_drain_and_shutdown(overlay: str) -> None:
    pod = _gateway_pod(overlay)
    (container,) = pod["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    drain = float(env["PUSHGATE_DRAIN_SECONDS"])
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = pod["terminationGracePeriodSeconds"]
    print(f"\ngrace {grace} s >= preStop {pre_stop} + drain {drain} + margin {GRACE_MARGIN}")
    assert GRACE_MARGIN >= AFTER_WINDOW
    assert grace >= pre_stop + drain + GRACE_MARGIN
    # The numbers mean something only for the command that drains, probed on /readyz.
    assert container["args"][:2] == ["pushgate", "gateway"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_compose_stop_grace_covers_the_drain() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    gateways = [s for s in services.values() if s.get("command", [])[:2] == ["pushgate", "gateway"]]
    assert len(gateways) == 3
    for gateway in gateways:
        drain = float(gateway["environment"]["PUSHGATE_DRAIN_SECONDS"])
        period = re.fullmatch(r"(\d+)s", gateway["stop_grace_period"])
        assert period is not None
        print(f"\nstop_grace_period {period[0]} >= drain {drain} + {AFTER_WINDOW}")
        assert int(period[1]) >= drain + AFTER_WINDOW
    assert "pushgate" in (ROOT / "Dockerfile").read_text().rsplit("CMD", 1)[1]


def test_compose_runs_the_scaled_topology() -> None:
    """Three gateways behind the load balancer, two workers, two broker shards, a queue Redis."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    env = services["worker"]["environment"]
    shards = env["PUSHGATE_BROKER_URLS"].split(",")
    assert [url.split("//")[1].split(":")[0] for url in shards] == ["shard-0", "shard-1"]
    assert env["PUSHGATE_REDIS_URL"].startswith("redis://queue:")
    assert services["worker"]["deploy"]["replicas"] == 2
    assert upstreams(NGINX_CONF.read_text()) == [
        "gateway-1:8000",
        "gateway-2:8000",
        "gateway-3:8000",
    ]
    assert set(services["lb"]["depends_on"]) == {"gateway-1", "gateway-2", "gateway-3"}
    assert any(v.startswith("./deploy/compose/nginx.conf:") for v in services["lb"]["volumes"])


def test_the_load_balancer_config_is_valid_nginx(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    servers = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
    conf.write_text(loopback_conf(NGINX_CONF.read_text(), servers, 8000, tmp_path))
    argv = [find_nginx(), "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "e")]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert completed.returncode == 0, completed.stderr
