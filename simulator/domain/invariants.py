"""The engine's invariants, checked through the store's public reads: for tests and debugging."""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.domain.status import Stage, Status

if TYPE_CHECKING:
    from simulator.store.base import Store


def check_invariants(store: Store) -> list[str]:
    """Return every broken invariant of the jobs in `store` (an empty list when all hold)."""
    with store.transaction():
        problems: list[str] = []
        queued = list(store.queued())
        running = list(store.running())
        finished = list(store.finished())
        places: dict[str, int] = {}
        for job in (*queued, *running, *finished):
            places[job.job_id] = places.get(job.job_id, 0) + 1
            if store.get(job.job_id) is not job:
                problems.append(f"an index holds {job.job_id}, which is not stored")
        queued_ids = {job.job_id for job in queued}
        running_ids = {job.job_id for job in running}
        finished_ids = {job.job_id for job in finished}
        stored = list(store.jobs())
        histories: dict[str, set[str]] = {}
        for job in stored:
            where = places.get(job.job_id, 0)
            if where != 1:
                problems.append(f"{job.job_id} is in {where} places")
            kept = {Stage.QUEUED: queued_ids, Stage.TRANSLATING: running_ids, Stage.FINISHED: finished_ids}
            if job.job_id not in kept[job.stage]:
                problems.append(f"{job.job_id} is {job.stage.value} but not kept as such")
            if job.status.terminal != (job.stage is Stage.FINISHED):
                problems.append(f"{job.job_id} is {job.status.value} at stage {job.stage.value}")
            if job.status is Status.FAILED and job.stage is not Stage.QUEUED:
                problems.append(f"{job.job_id} is failed but not queued for its retry")
            if job.attempts > 1 + job.max_retries:
                problems.append(f"{job.job_id} made {job.attempts} attempts, more than 1 + {job.max_retries}")
            if job.user_id not in histories:
                histories[job.user_id] = {j.job_id for j in store.jobs(job.user_id)}
            if job.job_id not in histories[job.user_id]:
                problems.append(f"{job.job_id} is missing from its user's history")
            if job.idempotency_key is not None and store.find_idempotent(job.user_id, job.idempotency_key) is not job:
                problems.append(f"the idempotency key of {job.job_id} does not lead to it")
        if len(places) != len(stored) or store.count() != len(stored):
            problems.append("a queue, the running set or the finished list holds an unknown id")
        if store.queued_count() != len(queued) or store.running_count() != len(running):
            problems.append("the queue or running counts disagree with the indexes")
        priorities = [job.priority for job in queued]
        if priorities != sorted(priorities, reverse=True):
            problems.append("a free job is queued before a premium one")
        for priority in (1, 0):
            seqs = [job.enqueued_seq for job in queued if job.priority == priority]
            if seqs != sorted(seqs):
                problems.append("a lane is not in the order its jobs were queued")
        for position, job in enumerate(queued, 1):
            if store.queue_position(job) != position:
                problems.append(f"{job.job_id} is said to be at {store.queue_position(job)}, not {position}")
        for waiting in queued:
            for job in running:
                if job.started_seq < waiting.enqueued_seq:
                    continue  # it started before this job was queued
                if job.priority < waiting.priority:
                    problems.append(f"free {job.job_id} started while premium {waiting.job_id} waited")
                elif job.priority == waiting.priority and job.enqueued_seq > waiting.enqueued_seq:
                    problems.append(f"{job.job_id} started before {waiting.job_id}, queued earlier")
        return problems
