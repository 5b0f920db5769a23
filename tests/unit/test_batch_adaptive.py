"""``max_concurrency="auto"``: the AIMD limit's decisions, answer by answer (no network, no clock)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from airflow_provider_baseten.client.batch import AdaptiveLimit, check_concurrency
from airflow_provider_baseten.exceptions import BasetenValidationError


def _answers(limit: AdaptiveLimit, n: int, status: int = 200, latency: float = 0.02, busy: bool = True) -> None:
    """``n`` answers, each with the limit fully in use (``busy``) or mostly idle."""
    for _ in range(n):
        limit.sent += 1
        limit.inflight = int(limit.limit) - 1 if busy else 0
        limit.observe(limit.sent, status, latency)


def test_slow_start_doubles_per_round_trip_while_latency_holds() -> None:
    limit = AdaptiveLimit(start=8)
    _answers(limit, 8)  # one round trip at 8 in flight
    assert limit.limit == 16 and limit.slow_start
    _answers(limit, 16)
    assert limit.limit == 32


def test_it_does_not_grow_when_the_limit_is_not_what_holds_the_batch_back() -> None:
    limit = AdaptiveLimit(start=8)
    _answers(limit, 50, busy=False)
    assert limit.limit == 8


def test_it_stops_growing_when_latency_rises() -> None:
    limit = AdaptiveLimit(start=8)
    _answers(limit, 8, latency=0.02)
    grown = limit.limit
    _answers(limit, 20, latency=0.2)  # ten times the best: the server queues
    assert limit.limit == grown and not limit.slow_start


@pytest.mark.parametrize("status", [429, 503])
def test_an_overload_cuts_once_per_round_trip(status: int) -> None:
    limit = AdaptiveLimit(start=8)
    _answers(limit, 8 + 16 + 32)  # slow start to 64
    assert limit.limit == 64
    limit.inflight = 40  # the server refused the 41st
    limit.observe(limit.sent, status, 0.001)
    assert limit.limit == pytest.approx(20.5) and limit.w_max == 41 and not limit.slow_start  # half: slow start
    before = limit.limit
    limit.observe(limit.sent - 1, status, 0.001)  # sent before the cut: no second cut
    assert limit.limit == before and limit.overloads == 2 and limit.cuts == 1
    limit.sent += 1
    limit.inflight = 20
    limit.observe(limit.sent, status, 0.001)  # sent after it: cut again, by the gentle factor
    assert limit.limit == pytest.approx(0.9 * min(before, 21)) and limit.cuts == 2


def test_after_a_cut_it_returns_fast_to_below_the_refused_load_then_probes_slowly() -> None:
    limit = AdaptiveLimit(start=8, probe_rounds=8)
    limit.slow_start = False
    limit.limit, limit.w_max = 80.0, 100.0
    rounds = 0
    while limit.limit < 99:  # four per round trip below w_max - 1
        _answers(limit, int(limit.limit))
        rounds += 1
    assert rounds <= 6
    _answers(limit, 8 * 100)  # eight round trips around w_max: about one more
    assert 99 < limit.limit < 101.5


def test_never_below_the_floor_nor_above_the_ceiling() -> None:
    limit = AdaptiveLimit(start=8, floor=4, ceiling=20)
    for _ in range(10):
        limit.sent += 1
        limit.inflight = 0
        limit.observe(limit.sent, 503, 0.001)
    assert limit.limit == 4
    limit.slow_start = True
    _answers(limit, 200)
    assert limit.limit == 20 and limit.active == 20


def test_a_refused_request_is_retried_soon_once_then_by_the_policy() -> None:
    limit = AdaptiveLimit(start=8)
    limit.base = 0.02
    answers = iter([503, 503, 503])

    async def send(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers), request=request)

    async def main() -> list[str | None]:
        measured = limit.wrap(send)
        request = httpx.Request("POST", "http://127.0.0.1:1/predict")
        first = await measured(request)
        second = await measured(request)  # the same request again: the policy's backoff decides
        other = await measured(httpx.Request("POST", "http://127.0.0.1:1/predict"))
        return [r.headers.get("retry-after") for r in (first, second, other)]

    assert asyncio.run(main()) == ["0.040", None, "0.040"]
    assert limit.inflight == 0 and limit.overloads == 3


def test_a_server_retry_after_is_kept() -> None:
    limit = AdaptiveLimit()

    async def send(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "7"}, request=request)

    response = asyncio.run(limit.wrap(send)(httpx.Request("POST", "http://127.0.0.1:1/predict")))
    assert response.headers["retry-after"] == "7"


def test_workers_above_the_limit_wait_until_it_grows_or_the_batch_ends() -> None:
    async def main() -> list[tuple[int, bool]]:
        limit = AdaptiveLimit(start=4, floor=1)
        admitted: list[tuple[int, bool]] = []

        async def worker(slot: int) -> None:
            admitted.append((slot, await limit.admit(slot)))

        tasks = [asyncio.create_task(worker(s)) for s in range(8)]
        await asyncio.sleep(0)
        assert sorted(admitted) == [(0, True), (1, True), (2, True), (3, True)]
        limit.limit = 6.0
        limit._changed()  # what a growing answer does
        await asyncio.sleep(0)
        assert sorted(admitted)[-2:] == [(4, True), (5, True)]
        limit.close()
        await asyncio.gather(*tasks)
        return sorted(admitted)

    assert asyncio.run(main())[-2:] == [(6, False), (7, False)]


@pytest.mark.parametrize("value", [0, 1025, -1, 2.5, "8", "AUTO", None, True])
def test_a_bad_max_concurrency_is_a_typed_error(value: object) -> None:
    with pytest.raises(BasetenValidationError) as info:
        check_concurrency(value)
    assert info.value.field == "max_concurrency" and "'auto'" in info.value.message
