"""Unit tests for the broker's single timer heap (amqpbroker.broker.timers), on a fake clock."""

from __future__ import annotations

from collections.abc import Callable

from helpers import FakeClock

from amqpbroker.broker.timers import Timers


def recorder(log: list[tuple[str, float]], name: str) -> Callable[[float], None]:
    def callback(now: float) -> None:
        log.append((name, now))
    return callback


def test_now_reads_the_given_clock() -> None:
    clock = FakeClock(3.5)
    timers = Timers(clock=clock, wall_clock=lambda: 1_700_000_000.0)
    assert timers.now() == 3.5
    clock.advance(1.5)
    assert timers.now() == 5.0
    assert timers.wall_clock() == 1_700_000_000.0


def test_call_at_runs_in_deadline_order_then_insertion_order() -> None:
    timers = Timers(clock=FakeClock())
    log: list[tuple[str, float]] = []
    timers.call_at(3.0, recorder(log, "c"))
    timers.call_at(1.0, recorder(log, "a"))
    timers.call_at(2.0, recorder(log, "b1"))
    timers.call_at(2.0, recorder(log, "b2"))
    timers.run_due(10.0)
    assert [name for name, _ in log] == ["a", "b1", "b2", "c"]
    assert all(now == 10.0 for _, now in log)


def test_run_due_runs_only_due_timers_and_each_once() -> None:
    timers = Timers(clock=FakeClock())
    log: list[tuple[str, float]] = []
    timers.call_at(1.0, recorder(log, "a"))
    timers.call_at(2.0, recorder(log, "b"))
    timers.call_at(3.0, recorder(log, "c"))
    timers.run_due(0.5)
    assert log == []
    timers.run_due(2.0)  # a deadline equal to now is due
    assert log == [("a", 2.0), ("b", 2.0)]
    timers.run_due(2.5)
    assert log == [("a", 2.0), ("b", 2.0)]
    assert timers.next_deadline() == 3.0
    timers.run_due(3.0)
    timers.run_due(100.0)
    assert log == [("a", 2.0), ("b", 2.0), ("c", 3.0)]
    assert timers.next_deadline() is None


def test_cancel_makes_a_timer_a_no_op() -> None:
    timers = Timers(clock=FakeClock())
    log: list[tuple[str, float]] = []
    first = timers.call_at(1.0, recorder(log, "a"))
    timers.call_at(2.0, recorder(log, "b"))
    first.cancel()
    assert first.cancelled
    timers.run_due(5.0)
    assert log == [("b", 5.0)]


def test_cancel_after_running_is_harmless() -> None:
    timers = Timers(clock=FakeClock())
    log: list[tuple[str, float]] = []
    timer = timers.call_at(1.0, recorder(log, "a"))
    timers.run_due(1.0)
    timer.cancel()
    timers.run_due(2.0)
    assert log == [("a", 1.0)]


def test_next_deadline_skips_cancelled_timers() -> None:
    timers = Timers(clock=FakeClock())
    assert timers.next_deadline() is None
    a = timers.call_at(1.0, recorder([], "a"))
    b = timers.call_at(2.0, recorder([], "b"))
    timers.call_at(3.0, recorder([], "c"))
    assert timers.next_deadline() == 1.0
    a.cancel()
    b.cancel()
    assert timers.next_deadline() == 3.0


def test_next_deadline_none_when_everything_is_cancelled() -> None:
    timers = Timers(clock=FakeClock())
    for when in (1.0, 2.0):
        timers.call_at(when, recorder([], "x")).cancel()
    assert timers.next_deadline() is None


def test_on_earlier_only_for_a_new_earliest_deadline() -> None:
    timers = Timers(clock=FakeClock())
    woken: list[float | None] = []
    timers.on_earlier = lambda: woken.append(timers.next_deadline())
    timers.call_at(10.0, recorder([], "first"))
    assert woken == [10.0]
    timers.call_at(20.0, recorder([], "later"))
    timers.call_at(10.0, recorder([], "same"))
    assert woken == [10.0]
    timers.call_at(5.0, recorder([], "earlier"))
    assert woken == [10.0, 5.0]


def test_on_earlier_after_the_heap_emptied() -> None:
    timers = Timers(clock=FakeClock())
    woken: list[int] = []
    timers.on_earlier = lambda: woken.append(1)
    timers.call_at(1.0, recorder([], "a"))
    timers.run_due(1.0)
    timers.call_at(50.0, recorder([], "b"))
    assert woken == [1, 1]


def test_a_timer_added_by_a_callback_runs_in_the_same_pass_when_due() -> None:
    timers = Timers(clock=FakeClock())
    log: list[tuple[str, float]] = []

    def chain(now: float) -> None:
        log.append(("first", now))
        timers.call_at(now, recorder(log, "due"))
        timers.call_at(now + 1.0, recorder(log, "later"))

    timers.call_at(1.0, chain)
    timers.run_due(1.0)
    assert log == [("first", 1.0), ("due", 1.0)]
    assert timers.next_deadline() == 2.0


def test_a_callback_cancelling_a_later_due_timer() -> None:
    timers = Timers(clock=FakeClock())
    log: list[tuple[str, float]] = []
    victim = timers.call_at(2.0, recorder(log, "victim"))
    timers.call_at(1.0, lambda now: victim.cancel())
    timers.run_due(3.0)
    assert log == []
