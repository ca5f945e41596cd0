"""The pushgate worker: ``arq worker.WorkerSettings`` runs scrape jobs from the Redis queue.

``WorkerSettings`` is built from the environment when arq looks it up, not at import time.
"""

from __future__ import annotations

import os
from typing import Any


def __getattr__(name: str) -> Any:
    if name == "WorkerSettings":
        # Imported here, not above: `worker.config` imports this package's submodules.
        from pushgate.core.settings import Settings
        from worker.config import worker_settings

        return worker_settings(Settings.from_env(os.environ))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
