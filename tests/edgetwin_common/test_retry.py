"""The one retry policy: its delays, jitters and caps, its config model, and the old flat
spellings of that config, which keep working with one deprecation line each."""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

import pytest
from pydantic import ValidationError, ValidationInfo, model_validator

from edgetwin_common.config import Strict, validate_data
from edgetwin_common.errors import ConfigInvalid
from edgetwin_common.retry import Backoff, BackoffConfig, Jitter, complete_backoff_table


def policy(initial_s: float = 0.5, max_s: float = 30.0) -> BackoffConfig:
    return BackoffConfig(initial_s=initial_s, max_s=max_s)


def test_delays_double_up_to_the_maximum_and_reset_after_a_success() -> None:
    backoff = Backoff(policy())
    delays = [backoff.next_delay() for _ in range(9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff.attempts == 9
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_no_overflow_after_very_many_failures_nor_with_a_huge_maximum() -> None:
    assert Backoff(policy()).delay(100_000) == 30.0
    assert Backoff(policy()).delay(0) == 0.5  # no failure counts as the first
    huge = Backoff(policy(1.0, 1e300)).delay(100_000)
    with pytest.raises(OverflowError):
        threading.Lock().acquire(timeout=1e300)  # what a thread's wait would have done
    assert threading.Lock().acquire(timeout=huge)  # free: returns at once, no overflow


def test_a_supervised_loop_waits_before_every_attempt_but_the_first() -> None:
    stop = threading.Event()
    backoff = Backoff(policy(0.001, 0.004))
    waits_before: list[int] = []
    for number in backoff.attempts_until(stop):
        waits_before.append(backoff.attempts)
        if number == 3:
            backoff.reset()  # a success: the next wait is initial_s again
        if number == 5:
            stop.set()
    assert waits_before == [0, 1, 2, 1, 2]
    assert list(Backoff(policy()).attempts_until(stop)) == []  # stopped: no attempt


def test_a_stop_during_a_wait_ends_the_loop() -> None:
    stop = threading.Event()
    numbers = []
    for number in Backoff(policy(3600.0, 3600.0)).attempts_until(stop):
        numbers.append(number)
        threading.Timer(0.05, stop.set).start()  # stops the hour-long wait
    assert numbers == [1]


def test_equal_jitter_stays_between_half_and_all_of_the_nominal_delay() -> None:
    backoff = Backoff(policy(1.0, 300.0), Jitter.EQUAL, random.Random(7))
    for failures in range(1, 30):
        nominal = min(300.0, 2.0 ** (failures - 1))
        delays = [backoff.delay(failures) for _ in range(50)]
        assert all(nominal / 2 <= d <= nominal for d in delays)
        assert len(set(delays)) > 1  # it does spread


def test_added_jitter_adds_up_to_one_initial_delay_and_keeps_the_cap() -> None:
    backoff = Backoff(policy(0.5, 3.0), Jitter.ADDED, random.Random(3))
    first = [backoff.delay(1) for _ in range(200)]
    assert all(0.5 <= d <= 1.0 for d in first) and max(first) - min(first) > 0.3
    assert all(backoff.delay(10) == 3.0 for _ in range(20))  # 256 + jitter, capped


def test_the_same_seed_gives_the_same_delays() -> None:
    one = Backoff(policy(), Jitter.EQUAL, random.Random(1))
    two = Backoff(policy(), Jitter.EQUAL, random.Random(1))
    assert [one.next_delay() for _ in range(5)] == [two.next_delay() for _ in range(5)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"initial_s": 5, "max_s": 1}, "initial_s must be <= max_s"),
        ({"initial_s": 0, "max_s": 1}, "greater than 0"),
        ({"initial_s": 1, "max_s": float("inf")}, "finite number"),
        ({"initial_s": 1, "max_s": 2, "jitter": 1}, "Extra inputs are not permitted"),
    ],
)
def test_config_problems(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BackoffConfig.model_validate(data)


class Section(Strict):
    """A config section that retries, as sources, sync, OTA and the webhook do."""

    name: str = "pump"
    backoff: BackoffConfig = BackoffConfig(initial_s=2.0, max_s=60.0)

    @model_validator(mode="before")
    @classmethod
    def _backoff_table(cls, data: Any, info: ValidationInfo) -> Any:
        renamed = {"retry_min_s": ("initial_s",), "retry_max_s": ("max_s",)}
        return complete_backoff_table(cls, data, info, renamed, "section")


def test_a_partial_table_takes_the_sections_own_defaults() -> None:
    assert Section.model_validate({"backoff": {"max_s": 600}}).backoff == policy(2.0, 600.0)
    assert Section.model_validate({}).backoff == policy(2.0, 60.0)


def test_old_keys_keep_working_with_one_deprecation_line_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="edgetwin_common.config"):
        old = validate_data(
            {"name": "pump", "retry_min_s": 1, "retry_max_s": 9}, Section, "agent.toml"
        )
    assert old == Section.model_validate({"backoff": {"initial_s": 1, "max_s": 9}})
    assert [r.getMessage() for r in caplog.records] == [
        'agent.toml: section "pump": retry_min_s is deprecated, use backoff.initial_s',
        'agent.toml: section "pump": retry_max_s is deprecated, use backoff.max_s',
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edgetwin_common.config"):
        validate_data({"backoff": {"initial_s": 1}}, Section, "agent.toml")
    assert caplog.records == []  # the new spelling: nothing to say


def test_an_old_key_beside_its_new_one_is_a_problem(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigInvalid) as info:
        validate_data({"retry_max_s": 9, "backoff": {"max_s": 8}}, Section, "agent.toml")
    assert "retry_max_s is the old spelling of backoff.max_s: keep one" in str(info.value)


def test_an_invalid_old_value_is_reported_on_the_new_key(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="edgetwin_common.config"),
        pytest.raises(ConfigInvalid) as info,
    ):
        validate_data({"retry_min_s": 90, "retry_max_s": 9}, Section, "agent.toml")
    assert [str(p) for p in info.value.problems] == ["backoff: initial_s must be <= max_s (9.0)"]
    assert len(caplog.records) == 2  # the deprecations still said, once each
