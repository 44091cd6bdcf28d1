"""The PEP's memory: bounded, expiring, epoch-tagged entries (checked against a plain model), and
the policy version's freshness: at most one call per interval, one call for many waiters, a
new epoch on a change, never an old answer kept after a newer version was seen."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from security.pep.cache import Cache
from security.pep.freshness import Freshness

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


Op = tuple[str, int, int, int, int | None]  # (get|put, key, time, epoch, value)


@given(st.lists(st.tuples(st.sampled_from(["get", "put"]), st.integers(0, 5), st.integers(0, 20), st.integers(0, 2),
                          st.one_of(st.none(), st.integers(0, 2))), max_size=80),
       st.integers(1, 4))
def test_cache_agrees_with_a_model(ops: list[Op], size: int) -> None:
    cache: Cache[int] = Cache(size)
    model: dict[int, tuple[int, float, int | None]] = {}
    order: list[int] = []
    now = 0.0
    for kind, key, step, epoch, tag in ops:
        now += step / 10
        if kind == "put":
            cache.put(key, key * 10, now + 1.0, tag)
            model[key] = (key * 10, now + 1.0, tag)
            order = [k for k in order if k != key] + [key]
            while len(order) > size:
                del model[order.pop(0)]
            continue
        found = cache.get(key, now, epoch)
        entry = model.get(key)
        expected = None
        if entry is not None and now < entry[1] and (entry[2] is None or entry[2] == epoch):
            expected = entry[0]
            order = [k for k in order if k != key] + [key]
        elif entry is not None:
            del model[key]
            order.remove(key)
        assert found == expected
        assert len(cache) <= size


class Source:
    """A policy version the test moves; counts the calls; can be made slow or failing."""

    def __init__(self) -> None:
        self.version: int | None = 1
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def __call__(self) -> int | None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise OSError("down")
        return self.version


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_one_call_per_interval_and_a_new_epoch_on_a_change() -> None:
    source, clock = Source(), Clock()
    fresh = Freshness(source, 1.0, clock)
    assert await fresh.current() == 0 and source.calls == 1
    for _ in range(100):
        assert await fresh.current() == 0
    assert source.calls == 1
    source.version = 2
    clock.now = 0.99
    assert await fresh.current() == 0  # not yet asked again
    clock.now = 1.0
    assert await fresh.current() == 1 and source.calls == 2
    source.version = 1  # restored from a backup: the poll is believed
    clock.now = 2.5
    assert await fresh.current() == 2


async def test_waiters_share_one_call() -> None:
    source, clock = Source(), Clock()
    source.gate = asyncio.Event()
    fresh = Freshness(source, 1.0, clock)
    tasks = [asyncio.ensure_future(fresh.current()) for _ in range(50)]
    await asyncio.sleep(0)
    source.gate.set()
    assert await asyncio.gather(*tasks) == [0] * 50
    assert source.calls == 1


async def test_a_failed_poll_fails_its_waiters_and_is_tried_again() -> None:
    source, clock = Source(), Clock()
    fresh = Freshness(source, 1.0, clock)
    source.fail = True
    with pytest.raises(OSError):
        await fresh.current()
    source.fail = False
    assert await fresh.current() == 0 and source.calls == 2


async def test_user_answers_move_the_epoch_up_only_and_stale_answers_are_not_kept() -> None:
    source, clock = Source(), Clock()
    fresh = Freshness(source, 1.0, clock)
    await fresh.current()
    assert fresh.epoch_for(1) == 0
    fresh.observe(3)
    assert fresh.epoch == 1 and fresh.version == 3
    fresh.observe(2)  # an answer that raced a newer one
    assert fresh.epoch == 1 and fresh.version == 3
    assert fresh.epoch_for(2) is None  # older than what is known: not to be kept
    assert fresh.epoch_for(None) == 1  # Keyrock: no version on the answer


async def test_an_identity_manager_without_version_is_asked_once() -> None:
    source, clock = Source(), Clock()
    source.version = None
    fresh = Freshness(source, 1.0, clock)
    for step in range(5):
        clock.now = step * 10.0
        assert await fresh.current() == 0
    assert source.calls == 1


async def test_interval_zero_asks_every_time() -> None:
    source, clock = Source(), Clock()
    fresh = Freshness(source, 0.0, clock)
    for _ in range(3):
        await fresh.current()
    assert source.calls == 3
