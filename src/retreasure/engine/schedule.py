"""Model runs side by side: each model starts once every model it needs (its inputs, the tables its relationship
checks look up) has finished, on a few threads.

A build's fixed costs per model (a Delta commit, table checks, Python between the queries) leave a core idle
while a small model runs; two small models at once fill it (the hourly build's 47 runs, ~0.1 s each, are mostly
that). DuckDB, delta-rs and Arrow let go of the GIL while they work. What a model's run needs decided
(its windows, what its readers were built from) is decided on the calling thread, in dependency order, when it
becomes ready; only the runs themselves go to the threads. A step marked ``alone`` (a model reading a large
input) runs with nothing beside it: two such results in memory at once would raise the build's peak.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

from retreasure.engine.models import Model, needs
from retreasure.lake.store import TableRef

T = TypeVar("T")


@dataclass(frozen=True)
class Step(Generic[T]):
    """A model's run, planned: ``work`` runs on a worker thread; ``alone``, with no other run beside it."""

    work: Callable[[], T]
    alone: bool = False


def run_in_dependency_order(
    models: dict[TableRef, Model],
    plan: Callable[[Model], Step[T] | None],
    finish: Callable[[Model, T], None],
    workers: int = 1,
) -> None:
    """For each model (``models`` in dependency order), once all it needs among them has finished: ``plan`` it
    (None: nothing to run, it counts as finished), run its step on one of ``workers`` threads, then ``finish``
    it with the step's result. ``plan`` and ``finish`` run on the calling thread, in dependency order, ties
    going to the earlier model. When a step raises, nothing new starts once that is seen (a step handed to a free
    thread as another broke may still start); the runs under way end, then the first error is raised. With one
    worker the steps run on the calling thread, one after the other."""
    needed = {ref: {n for n in needs(model) if n in models and n != ref} for ref, model in models.items()}
    waiting = list(models)
    finished: set[TableRef] = set()
    queued: list[tuple[Model, Step[T]]] = []
    running: dict[Future[T], tuple[Model, bool]] = {}
    failure: BaseException | None = None

    def plan_next() -> bool:
        """Plan the first waiting model whose needs have finished; False when there is none. A model with nothing
        to run finishes at once, which may make the models after it ready."""
        ready = next((r for r in waiting if needed[r] <= finished), None)
        if ready is None:
            return False
        waiting.remove(ready)
        step = plan(models[ready])
        if step is None:
            finished.add(ready)
        else:
            queued.append((models[ready], step))
        return True

    def start_queued() -> None:
        while queued and _may_start(queued[0][1], running, workers):
            model, step = queued.pop(0)
            running[pool.submit(step.work)] = (model, step.alone)

    pool: ThreadPoolExecutor | _Inline = (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="model") if workers > 1 else _Inline()
    )
    try:
        while True:
            if failure is None:
                # Each step starts as soon as it is planned and a thread is free: planning the next ready models
                # (what their windows are, what their readers saw) overlaps the runs already under way.
                while plan_next():
                    start_queued()
                start_queued()
            if not running:
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                model, _alone = running.pop(future)
                error = future.exception()
                if error is None:
                    # Also after another step failed: its run was written, and the build's record counts it.
                    finish(model, future.result())
                    finished.add(model.ref)
                else:
                    failure = failure or error
    finally:
        pool.shutdown(wait=True)
    if failure is not None:
        raise failure


class _Inline:
    """One worker: each step runs on the calling thread when submitted (as a build ran before it had threads)."""

    def submit(self, work: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(work())
        except BaseException as exc:  # handed on by the future, as a worker thread's would be
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass


def _may_start(step: Step[T], running: dict[Future[T], tuple[Model, bool]], workers: int) -> bool:
    if not running:
        return True
    return len(running) < workers and not step.alone and not any(alone for _, alone in running.values())
