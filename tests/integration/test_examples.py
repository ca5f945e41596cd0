"""Each example runs with README's one command and prints what README shows (ports and client
ids aside): ``python -m examples.running_total``, ``counter`` and ``proxy_backend``."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 180.0


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```sh\n(.*?)```", readme, re.S) if "examples." in b]
    return [line.split("#")[0].strip() for line in block.splitlines() if line.startswith("python")]


def readme_output(command: str) -> list[str]:
    """The lines README shows after ``$ <command>``."""
    readme = (ROOT / "README.md").read_text()
    shown = readme.split(f"$ {command}\n", 1)[1]
    return shown.split("\n\n", 1)[0].split("\n```", 1)[0].splitlines()


def masked(lines: list[str]) -> list[str]:
    ports = [re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", line) for line in lines]
    # Not \b after the id: it may end with "-", and "-)" has no word boundary.
    client_id = r"client [A-Za-z0-9_-]{16}(?![A-Za-z0-9_-])"
    return [re.sub(client_id, "client <id>", line) for line in ports]


def test_readme_names_the_three_examples() -> None:
    assert [command.split()[-1] for command in readme_commands()] == [
        "examples.running_total", "examples.counter", "examples.proxy_backend",
    ]  # fmt: skip


@pytest.mark.parametrize("command", readme_commands())
def test_an_example_runs_with_one_command(command: str) -> None:
    argv = shlex.split(command)
    assert argv[0] == "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")}
    ran = subprocess.run(
        [sys.executable, *argv[1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    print(ran.stdout)
    assert masked(ran.stdout.splitlines()) == masked(readme_output(command))
