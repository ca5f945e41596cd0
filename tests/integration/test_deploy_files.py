"""There is no Docker engine here: the compose file is validated offline against its schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
