"""Headroom, ranking and the autoscaling rule, without Ray."""

from __future__ import annotations

from dataclasses import dataclass

from csmstream.engine.base import EngineStats
from csmstream.scale.autoscale import autoscaling_stats, desired_replicas
from csmstream.scale.headroom import (
    STALE_AFTER_S,
    HeadroomLedger,
    Ranked,
    estimate,
    rank_by_headroom,
    replica_stats,
)


@dataclass
class FakeEngine:
    stats_value: EngineStats
    status: str = "ok"

    def stats(self) -> EngineStats:
        return self.stats_value


def engine(active=0, queued=0, capacity=None, max_slots=8, behind=0, status="ok") -> FakeEngine:
    stats = EngineStats(
        active_sessions=active,
        queued=queued,
        max_slots=max_slots,
        max_queue=32,
        step_ms_avg=None,
        capacity_streams=capacity,
        streams_behind=behind,
    )
    return FakeEngine(stats, status)


def test_headroom_is_measured_capacity_minus_streams_held():
    stats = replica_stats(engine(active=3, queued=1, capacity=10), "r1", now=100.0)
    assert stats["headroom"] == 6 and stats["capacity_source"] == "measured"
    assert replica_stats(engine(active=2, capacity=10, behind=1), "r1")["headroom"] == 7


def test_an_engine_without_a_measure_declares_its_slots():
    stats = replica_stats(engine(active=1, queued=0, capacity=None, max_slots=1), "piper")
    assert stats["headroom"] == 0 and stats["capacity"] == 1 and stats["capacity_source"] == "slots"


def test_most_headroom_first_then_unmeasured_then_full_then_not_serving():
    ranks = rank_by_headroom(
        [
            Ranked("full", 0.0),
            Ranked("two", 2.0),
            Ranked("fresh", None),
            Ranked("five", 5.0),
            Ranked("also-two", 2.0),
            Ranked("over", -3.0),
            Ranked("draining", None, serving=False),
        ]
    )
    assert ranks == [["five"], ["two", "also-two"], ["fresh"], ["full"], ["over"], ["draining"]]


def test_nothing_measured_is_one_rank_left_to_fewest_ongoing_requests():
    assert rank_by_headroom([Ranked("a", None), Ranked("b", None)]) == [["a", "b"]]


def test_sends_since_the_report_take_headroom_and_completions_give_it_back():
    clock = [100.0]
    ledger = HeadroomLedger(clock=lambda: clock[0])
    report = {"headroom": 3, "measured_at": 100.5, "status": "ok"}
    ledger.sent("a")  # at 100.0: before the report, already in it
    clock[0] = 101.0
    ledger.sent("a")
    ledger.sent("a")
    assert estimate(report, "a", ledger, now=101.0).headroom == 1
    ledger.completed("a")
    assert estimate(report, "a", ledger, now=101.0).headroom == 2
    newer = {"headroom": 2, "measured_at": 101.5, "status": "ok"}  # the next report replaces the estimate
    assert estimate(newer, "a", ledger, now=102.0).headroom == 2


def test_stale_missing_and_non_serving_reports():
    ledger = HeadroomLedger()
    assert estimate(None, "a", ledger, now=0.0).headroom is None
    assert estimate({}, "a", ledger, now=0.0).headroom is None
    old = {"headroom": 4, "measured_at": 0.0, "status": "ok"}
    assert estimate(old, "a", ledger, now=STALE_AFTER_S + 1).headroom is None
    starting = {"headroom": 4, "measured_at": 0.0, "status": "starting"}
    assert estimate(starting, "a", ledger, now=1.0).serving is False


def test_autoscaling_asks_for_replicas_by_streams_over_capacity():
    assert desired_replicas({}, {}) is None
    assert desired_replicas({"a": 6.0, "b": 6.0}, {"a": 8.0, "b": 8.0}, target_utilization=0.75) == 2.0
    # a backlog (queued streams count) asks for more
    assert desired_replicas({"a": 14.0, "b": 10.0}, {"a": 8.0, "b": 8.0}, target_utilization=0.75) == 4.0
    stats = replica_stats(engine(active=8, queued=4, capacity=8), "a")
    assert autoscaling_stats(stats) == {"csmstream_streams": 12.0, "csmstream_capacity": 8.0}


def test_flags_reach_the_replicas_as_settings_variables():
    import os
    from pathlib import Path
    from unittest import mock

    from csmstream.config import Settings
    from csmstream.scale.ray_serve import replica_env

    env = replica_env(
        {
            "engine": "piper",
            "max_slots": 4,
            "voices_dir": Path("/shared/voices"),
            "default_llm": False,
            "model": None,
        },
        environ={"CSMSTREAM_MAX_QUEUE": "5", "CSMSTREAM_MAX_SLOTS": "2", "HOME": "/root", "HF_TOKEN": "t"},
    )
    assert env == {
        "CSMSTREAM_MAX_QUEUE": "5",
        "CSMSTREAM_MAX_SLOTS": "4",  # the flag wins
        "CSMSTREAM_ENGINE": "piper",
        "CSMSTREAM_VOICES_DIR": "/shared/voices",
        "CSMSTREAM_DEFAULT_LLM": "0",
        "HF_TOKEN": "t",
    }
    with mock.patch.dict(os.environ, env, clear=False):  # what a replica reads back
        settings = Settings()
    assert (settings.engine, settings.max_slots, settings.max_queue) == ("piper", 4, 5)
    assert settings.voices_dir == Path("/shared/voices") and settings.default_llm is False


def test_policy_uses_streams_and_falls_back_to_ongoing_requests():
    from types import SimpleNamespace

    from csmstream.scale.autoscale import streams_policy

    config = SimpleNamespace(get_target_ongoing_requests=lambda: 8)
    reported = SimpleNamespace(
        aggregated_metrics={"csmstream_streams": {"a": 9.0}, "csmstream_capacity": {"a": 4.0}},
        total_num_requests=1.0,
        config=config,
    )
    assert streams_policy(reported) == (3.0, {})  # 9 streams / (4 × 0.75)
    silent = SimpleNamespace(aggregated_metrics=None, total_num_requests=24.0, config=config)
    assert streams_policy(silent) == (3.0, {})  # 24 ongoing requests / 8 per replica
