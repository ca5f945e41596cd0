"""There is no Docker engine here: the compose file and the manifests are validated offline
against their schemas, and their shutdown numbers checked against the gateway's drain."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from gateway.server import CLOSE_WAIT_SECONDS, SHUTDOWN_TIMEOUT_SECONDS

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


def test_kubernetes_manifests_are_valid_strictly() -> None:
    validator = Path(sys.executable).parent / "kubernetes-validate"
    manifests = sorted(
        p for p in (ROOT / "deploy").glob("*.yaml") if p.name != "kustomization.yaml"
    )
    assert manifests
    completed = subprocess.run(
        [str(validator), "--strict", "--quiet", *map(str, manifests)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def _gateway_pod() -> dict[str, Any]:
    documents = yaml.safe_load_all((ROOT / "deploy" / "gateway.yaml").read_text())
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def test_the_grace_period_covers_pre_stop_drain_and_shutdown() -> None:
    pod = _gateway_pod()
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
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    gateway = compose["services"]["gateway"]
    drain = float(gateway["environment"]["PUSHGATE_DRAIN_SECONDS"])
    period = re.fullmatch(r"(\d+)s", gateway["stop_grace_period"])
    assert period is not None
    print(f"\nstop_grace_period {period[0]} >= drain {drain} + {AFTER_WINDOW}")
    assert int(period[1]) >= drain + AFTER_WINDOW
    assert "command" not in gateway  # the image's: pushgate gateway
    assert "pushgate" in (ROOT / "Dockerfile").read_text().rsplit("CMD", 1)[1]
