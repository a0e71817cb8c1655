from __future__ import annotations

import pytest
from smsfailover.express_shim.simulator.faults import Delay, FaultDice, FaultPlanError, parse_plan


def test_an_empty_plan_injects_nothing() -> None:
    dice = FaultDice(parse_plan({}))

    assert not any(dice.hits() for _ in range(100))
    assert dice.delay_s(create=True) == 0


def test_latency_is_fixed_or_a_range_and_slow_after_accept_adds_to_creates_only() -> None:
    plan = parse_plan({"latency_ms": [100, 200], "slow_after_accept_ms": 1000, "seed": 3})
    assert plan.latency == Delay(100, 200)
    dice = FaultDice(plan)

    creates = [dice.delay_s(create=True) for _ in range(50)]
    fetches = [dice.delay_s(create=False) for _ in range(50)]

    assert all(1.1 <= d <= 1.2 for d in creates)
    assert all(0.1 <= d <= 0.2 for d in fetches)
    assert len(set(fetches)) > 1


def test_the_same_seed_gives_the_same_faults_in_the_same_order() -> None:
    plan = parse_plan({"seed": 42, "status": 503, "rate": 0.3, "latency_ms": [0, 50]})

    def run() -> list[tuple[bool, float]]:
        dice = FaultDice(plan)
        return [(dice.hits(), dice.delay_s(create=True)) for _ in range(200)]

    first = run()
    assert run() == first
    hits = sum(hit for hit, _ in first)
    assert 30 < hits < 90  # about 30 % of 200


def test_error_rate_means_500_at_that_rate() -> None:
    plan = parse_plan({"error_rate": 0.5})

    assert (plan.status, plan.rate) == (500, 0.5)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"latency_ms": -1}, "latency_ms"),
        ({"latency_ms": [300, 100]}, "latency_ms"),
        ({"latency_ms": [1, 2, 3]}, "latency_ms"),
        ({"latency_ms": "slow"}, "latency_ms"),
        ({"status": 200}, "status"),
        ({"status": True}, "status"),
        ({"rate": 1.5}, "rate"),
        ({"outage": "sometimes"}, "outage"),
        ({"error_rate": 0.1, "status": 503}, "error_rate"),
        ({"reject_code": 5}, "reject_code"),
        ({"latency": 5}, "latency"),
    ],
)
def test_a_bad_plan_names_its_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(FaultPlanError) as caught:
        parse_plan(raw)

    assert caught.value.field == field
