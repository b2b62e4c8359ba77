"""The build's scheduler over the project's own model graph: needs first, runs side by side, alone when asked,
and a failure that stops what has not started."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from retreasure.engine.models import Model, load_models, needs
from retreasure.engine.schedule import Step, run_in_dependency_order
from retreasure.lake.store import TableRef

MODELS = load_models()


def _recorder(
    alone: frozenset[str] = frozenset(), fail: str | None = None
) -> tuple[list[tuple[str, str]], Callable[[Model], Step[str]], Callable[[Model, str], None], threading.Lock]:
    """plan/finish that log ("start"|"end"|"broke"|"finish", model) in order."""
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def plan(model: Model) -> Step[str]:
        name = str(model.ref)

        def work() -> str:
            with lock:
                events.append(("start", name))
            time.sleep(0.002)
            if name == fail:
                with lock:
                    events.append(("broke", name))
                raise RuntimeError(f"{name} broke")
            with lock:
                events.append(("end", name))
            return name

        return Step(work, alone=name in alone)

    def finish(model: Model, result: str) -> None:
        assert result == str(model.ref)
        events.append(("finish", result))

    return events, plan, finish, lock


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_a_model_starts_only_after_all_it_needs_finished(workers: int) -> None:
    events, plan, finish, _ = _recorder()
    run_in_dependency_order(MODELS, plan, finish, workers)
    started = {name: i for i, (kind, name) in enumerate(events) if kind == "start"}
    finished = {name: i for i, (kind, name) in enumerate(events) if kind == "finish"}
    assert set(finished) == {str(ref) for ref in MODELS}
    for ref, model in MODELS.items():
        for need in needs(model):
            if need in MODELS and need != ref:
                assert finished[str(need)] < started[str(ref)], f"{ref} started before {need} finished"


def test_independent_models_run_at_once() -> None:
    """Two models that need nothing of each other meet inside their steps: only possible side by side."""
    first, second = TableRef("silver", "fx_rates"), TableRef("silver", "stg_pos_inventory")
    met = threading.Barrier(2, timeout=10)
    threads: set[str] = set()

    def plan(model: Model) -> Step[None] | None:
        if model.ref not in (first, second):
            return None

        def work() -> None:
            threads.add(threading.current_thread().name)
            met.wait()  # raises BrokenBarrierError after 10 s if the other never runs beside it

        return Step(work)

    run_in_dependency_order(MODELS, plan, lambda model, result: None, workers=2)
    assert len(threads) == 2


def test_an_alone_step_has_nothing_beside_it() -> None:
    alone = frozenset({"silver.web_events", "silver.geo"})
    events, plan, finish, _ = _recorder(alone=alone)
    run_in_dependency_order(MODELS, plan, finish, 4)
    running: set[str] = set()
    for kind, name in events:
        if kind == "start":
            assert not (running and (name in alone or running & alone)), f"{name} started beside {running}"
            running.add(name)
        elif kind == "end":
            running.discard(name)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failure_stops_what_has_not_started_and_is_raised(workers: int) -> None:
    broken = "silver.web_events"
    events, plan, finish, _ = _recorder(fail=broken)
    with pytest.raises(RuntimeError, match=r"silver\.web_events broke"):
        run_in_dependency_order(MODELS, plan, finish, workers)
    started = [name for kind, name in events if kind == "start"]
    broke_at = events.index(("broke", broken))
    # Nothing new starts once the failure is seen; a run handed to a free thread as it broke, before its future said
    # so, may still start: at most one per other worker.
    assert len([e for e in events[broke_at:] if e[0] == "start"]) <= workers - 1
    for name in started:  # every run that started and did not break was finished (the build's record counts it)
        if name != broken:
            assert ("finish", name) in events
    downstream_of_broken = {str(r) for r, m in MODELS.items() if TableRef.parse(broken) in m.inputs}
    assert not downstream_of_broken & set(started)


def test_one_worker_runs_on_the_calling_thread_in_model_order() -> None:
    threads: list[str] = []
    order: list[TableRef] = []

    def plan(model: Model) -> Step[None]:
        def work() -> None:
            threads.append(threading.current_thread().name)
            order.append(model.ref)

        return Step(work)

    run_in_dependency_order(MODELS, plan, lambda model, result: None, workers=1)
    assert set(threads) == {threading.current_thread().name}
    assert order == list(MODELS)


def test_a_step_starts_as_soon_as_it_is_planned() -> None:
    """The second model ready at the start is planned while the first already runs: planning (reading what a
    model's readers saw, its windows) overlaps the runs instead of holding every thread until all are planned."""
    ready = [ref for ref, model in MODELS.items() if not {n for n in needs(model) if n in MODELS and n != ref}]
    first, second = ready[:2]
    started = threading.Event()
    seen_while_planning: list[bool] = []

    def plan(model: Model) -> Step[None] | None:
        if model.ref == second:
            seen_while_planning.append(started.wait(timeout=10))
        if model.ref not in (first, second):
            return None
        return Step(started.set if model.ref == first else lambda: None)

    run_in_dependency_order(MODELS, plan, lambda model, result: None, workers=2)
    assert seen_while_planning == [True]
