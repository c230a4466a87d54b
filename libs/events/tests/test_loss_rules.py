"""The rules that tell a lost topic and a stalled projection, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiokafka import TopicPartition

from libs.events.lag import SavedCheckpoint, partition_lag
from libs.events.published import PartitionEnd, compare_acknowledged, compare_with_broker

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TP = TopicPartition("crm.contacts.events", 0)
PUBLISHED = {0: PartitionEnd(last_batch_offset=90, end_offset=100), 1: PartitionEnd(40, 41)}


def test_a_topic_holding_the_last_acknowledged_batch_lost_nothing() -> None:
    # The bundled broker answers ListOffsets with the last batch's base offset + 1.
    assert compare_with_broker(PUBLISHED, {0: 91, 1: 41}) is None
    assert compare_with_broker(PUBLISHED, {0: 100, 1: 41, 2: 0}) is None


def test_a_topic_that_is_gone_or_ends_before_the_last_batch_lost_it() -> None:
    missing = compare_with_broker(PUBLISHED, None)
    shorter = compare_with_broker(PUBLISHED, {0: 90, 1: 41})
    no_partition = compare_with_broker(PUBLISHED, {0: 100})

    assert missing is not None and missing.kind == "missing"
    assert shorter is not None and shorter.kind == "shorter"
    assert no_partition is not None and no_partition.kind == "missing"


def test_nothing_published_yet_is_nothing_to_lose() -> None:
    assert compare_with_broker({}, None) is None


def test_an_acknowledgement_below_what_was_published_means_a_new_log() -> None:
    assert compare_acknowledged(PUBLISHED, {0: PartitionEnd(100, 120)}) is None
    rewound = compare_acknowledged(PUBLISHED, {0: PartitionEnd(0, 5)})
    assert rewound is not None and rewound.kind == "rewound"


def test_a_checkpoint_beyond_the_end_counts_the_whole_partition_and_is_stalled() -> None:
    saved = SavedCheckpoint(next_offset=500, last_event_time=None, updated_at=NOW)
    lag = partition_lag(TP, 3, saved, NOW - timedelta(seconds=4), now=NOW)

    assert (lag.events, lag.stalled, lag.state) == (3, True, "beyond_end")
    assert lag.seconds == 4.0


def test_a_checkpoint_beyond_an_empty_partition_is_stalled_with_the_time_since_it_moved() -> None:
    saved = SavedCheckpoint(500, None, NOW - timedelta(seconds=9))
    lag = partition_lag(TP, 0, saved, None, now=NOW)

    assert lag.stalled and lag.seconds == 9.0


def test_behind_and_moving_is_not_stalled_but_its_lag_is_the_oldest_wait() -> None:
    saved = SavedCheckpoint(10, NOW - timedelta(hours=1), NOW - timedelta(seconds=1))
    lag = partition_lag(TP, 15, saved, NOW - timedelta(seconds=2), now=NOW)

    assert (lag.events, lag.stalled, lag.seconds) == (5, False, 2.0)


def test_behind_without_moving_past_the_limit_is_stalled() -> None:
    saved = SavedCheckpoint(10, None, NOW - timedelta(seconds=31))
    never_read = partition_lag(TP, 4, None, NOW - timedelta(seconds=31), now=NOW)

    assert partition_lag(TP, 15, saved, NOW - timedelta(seconds=31), now=NOW).stalled
    assert never_read.stalled and never_read.events == 4


def test_a_quiet_projection_is_not_stalled_by_a_message_just_published() -> None:
    saved = SavedCheckpoint(10, None, NOW - timedelta(hours=1))
    lag = partition_lag(TP, 11, saved, NOW - timedelta(seconds=1), now=NOW)

    assert (lag.events, lag.stalled) == (1, False)


def test_caught_up_has_no_lag() -> None:
    lag = partition_lag(TP, 10, SavedCheckpoint(10, None, NOW - timedelta(days=1)), None, now=NOW)

    assert (lag.events, lag.seconds, lag.stalled, lag.state) == (0, 0.0, False, "caught_up")
