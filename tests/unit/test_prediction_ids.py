"""Prediction ids carry the time they were minted, so /feedback waits only for ids that another replica
may not have written yet (issue 14, point 6)."""

from __future__ import annotations

import re
import uuid

from service.predlog import minted_within, new_prediction_id


def test_ids_are_32_hex_characters_that_sort_by_time() -> None:
    ids = [new_prediction_id(now=1_800_000_000 + i / 1000) for i in range(5)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_only_a_freshly_minted_id_is_worth_waiting_for() -> None:
    now = 1_800_000_000.0
    fresh = new_prediction_id(now=now - 0.5)
    assert minted_within(fresh, 2.0, now=now)
    assert not minted_within(new_prediction_id(now=now - 10), 2.0, now=now)  # old: it would be written by now
    assert minted_within(new_prediction_id(now=now + 0.5), 2.0, now=now)  # another replica's clock runs ahead
    assert not minted_within(new_prediction_id(now=now + 5), 2.0, now=now)
    assert not minted_within(uuid.uuid4().hex, 2.0, now=now)  # ids from before, or made up
    assert not minted_within("not-an-id", 2.0, now=now) and not minted_within(fresh[:20], 2.0, now=now)
