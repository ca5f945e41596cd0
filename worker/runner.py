"""``python -m worker``: arq's worker, made to ride out Redis outages of any length.

arq's CLI (``arq worker.WorkerSettings``) always builds arq's own ``Worker``, whose main loop
ends at the first Redis error: the process exits about 0.1 s into an outage. ``PushgateWorker``
waits for Redis instead (capped, jittered backoff) and carries on where it was. Everything else
(the job lease, terminal events, tries, the drain on SIGTERM) lives in the task and its
settings, so it is the same under both commands.
"""

from __future__ import annotations

import logging
import logging.config
import os

from arq.logs import default_log_config
from arq.worker import Worker
from redis.exceptions import WatchError

from pushgate.broker.jobqueue import UNAVAILABLE
from pushgate.core.settings import Settings
from worker.config import worker_settings
from worker.outage import wait_for_redis

log = logging.getLogger(__name__)

# redis-py reports a connection lost inside a WATCH block (arq's claim of a job) as WatchError.
_LOST_REDIS: tuple[type[Exception], ...] = (*UNAVAILABLE, WatchError)


class PushgateWorker(Worker):
    def __init__(self, settings: Settings) -> None:
        super().__init__(**worker_settings(settings))
        # arq marks a job it starts in progress for the job's timeout + 10 s; the lease is the
        # whole mark here, so a worker killed before its first renewal holds the job no longer.
        self.in_progress_timeout_s = settings.pool.lease_seconds
        self._reconnect_cap = settings.pool.reconnect_max_delay
        self._slots_freed = 0

    async def main(self) -> None:
        try:
            await self.pool.ping()
        except UNAVAILABLE as exc:  # Redis is not up yet, or restarting
            await self._ride_out(exc)
        await super().main()

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except _LOST_REDIS as exc:
            # Running jobs carry on (their Redis calls retry); a job whose end could not be
            # recorded is run again once its lease lapses, and publishes nothing twice.
            await self._ride_out(exc)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        # arq would claim a job it runs already if the queue lists it again: after a failover
        # the new master may not have the claim, which was made on the old one.
        job_ids = [job_id for job_id in job_ids if job_id.decode() not in self.tasks]
        slots, freed, running = self.job_counter, self._slots_freed, len(self.tasks)
        try:
            await super().start_jobs(job_ids)
        except _LOST_REDIS:
            # arq takes a job slot before it claims a job and gives it back on every way out of
            # the claim but a Redis failure: each such outage would cost the worker a slot.
            taken = self.job_counter - slots + self._slots_freed - freed
            if taken > len(self.tasks) - running:
                self._release_sem_dec_counter_on_complete()
            raise

    def _release_sem_dec_counter_on_complete(self) -> None:
        # Counted: jobs that end while a claim waits on Redis give their slots back meanwhile.
        self._slots_freed += 1
        super()._release_sem_dec_counter_on_complete()

    async def close(self) -> None:
        try:
            await super().close()
        except UNAVAILABLE as exc:
            log.warning("Redis unavailable while stopping (%s)", exc)

    async def _ride_out(self, exc: Exception) -> None:
        log.warning("Redis unavailable (%s); waiting for it", exc)
        waited = await wait_for_redis(self.pool, cap=self._reconnect_cap)
        log.warning("Redis is back after %.1f s", waited)


def main() -> None:
    config = default_log_config(verbose=False)
    # The worker package logs next to arq, in arq's format.
    config["loggers"]["worker"] = {"handlers": ["arq.standard"], "level": "INFO"}
    logging.config.dictConfig(config)
    PushgateWorker(Settings.from_env(os.environ)).run()
