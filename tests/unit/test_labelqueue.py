"""The label queue's ranking as a pure function (labeling.ranking): margin order, diversity, the random
share, no item twice; and the store's item and lease of one pick (registry.store.labelqueue)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest

from labeling.ranking import MARGIN, RANDOM, margins, rank_queue
from registry.entities import Handout, QueuePick
from registry.store.labelqueue import lease_row, queue_item


def probs_with_margins(gaps: list[float]) -> np.ndarray:
    """Three-class rows whose top-1 minus top-2 is each of ``gaps``."""
    rows = []
    for g in gaps:
        second = (1.0 - g) / 2.0 - 0.01
        rows.append([second + g, second, 1.0 - 2 * second - g])
    return np.array(rows)


def test_margins_are_top1_minus_top2() -> None:
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.34, 0.33, 0.33]])
    assert margins(p) == pytest.approx([0.2, 0.7, 0.01])


def test_without_diversity_or_random_share_the_queue_is_in_margin_order() -> None:
    gaps = [0.9, 0.05, 0.5, 0.01, 0.3, 0.7]
    queue = rank_queue(probs_with_margins(gaps), 4, random_share=0.0)
    assert [c.index for c in queue] == [3, 1, 4, 2]
    assert [c.rank for c in queue] == [1, 2, 3, 4]
    assert all(c.strategy == MARGIN for c in queue)
    assert [c.margin for c in queue] == pytest.approx([0.01, 0.05, 0.3, 0.5])


def test_near_copies_of_one_template_wait_until_the_distinct_candidates_run_out() -> None:
    rng = np.random.default_rng(0)
    template = rng.normal(size=16)
    copies = np.vstack([template + rng.normal(scale=0.01, size=16) for _ in range(60)])
    distinct = rng.normal(size=(10, 16))
    embeddings = np.vstack([copies, distinct])
    gaps = [0.01 + 0.0001 * i for i in range(60)] + [0.2 + 0.01 * i for i in range(10)]
    queue = rank_queue(probs_with_margins(gaps), 10, embeddings=embeddings, random_share=0.0)
    indices = [c.index for c in queue]
    assert indices[0] == 0  # the most uncertain copy still comes first
    assert sum(i < 60 for i in indices) == 1  # one of the template, then the distinct ones
    assert sorted(indices[1:]) == list(range(60, 69))
    # without the embeddings, the copies fill the queue
    plain = rank_queue(probs_with_margins(gaps), 10, random_share=0.0)
    assert all(c.index < 60 for c in plain)
    # asked for more than the distinct ones: near-copies fill the rest, in margin order
    more = [
        c.index for c in rank_queue(probs_with_margins(gaps), 20, embeddings=embeddings, random_share=0.0)
    ]
    assert len(more) == len(set(more)) == 20 and more[11:] == list(range(1, 10))


def test_the_same_text_is_offered_once_while_other_texts_remain() -> None:
    gaps = [0.01, 0.02, 0.03, 0.5, 0.6]
    keys = ["a", "a", "a", "b", "c"]
    queue = rank_queue(probs_with_margins(gaps), 3, keys=keys, random_share=0.0)
    assert [c.index for c in queue] == [0, 3, 4]


def test_the_random_share_is_marked_spread_and_never_offered_twice() -> None:
    n = 500
    gaps = list(np.linspace(0.0, 1.0, n))
    queue = rank_queue(probs_with_margins(gaps), 100, random_share=0.1, seed=3)
    assert len(queue) == 100
    indices = [c.index for c in queue]
    assert len(set(indices)) == 100  # no item twice
    randoms = [c for c in queue if c.strategy == RANDOM]
    assert len(randoms) == 10
    ranks = sorted(c.rank for c in randoms)
    assert ranks[0] <= 10 and ranks[-1] >= 90  # spread through the queue, not all at one end
    # the margin part is the 90 smallest margins among the rest
    margin_part = [c.index for c in queue if c.strategy == MARGIN]
    rest = [i for i in range(n) if i not in {c.index for c in randoms}]
    assert margin_part == rest[:90]
    # the random picks are not the smallest margins: they come from the whole range
    assert max(c.margin for c in randoms) > 0.3
    # another seed draws other random items
    other = rank_queue(probs_with_margins(gaps), 100, random_share=0.1, seed=4)
    assert {c.index for c in other if c.strategy == RANDOM} != {c.index for c in randoms}


def test_limits() -> None:
    p = probs_with_margins([0.1, 0.2, 0.3])
    assert [c.index for c in rank_queue(p, 10, random_share=0.0)] == [0, 1, 2]  # fewer than asked
    assert rank_queue(p, 0) == []
    assert [c.strategy for c in rank_queue(p, 3, random_share=1.0)] == [RANDOM] * 3
    with pytest.raises(ValueError, match="random_share"):
        rank_queue(p, 2, random_share=1.5)


def test_a_queue_item_and_its_lease_say_the_same_place_in_the_same_hand_out() -> None:
    now = datetime(2026, 12, 5, tzinfo=UTC)
    logged = SimpleNamespace(id="p1", text="a text", created_at=now - timedelta(hours=1), label="positive")
    pick = QueuePick(
        prediction_id="p1",
        strategy=RANDOM,
        margin=0.123456789,
        scores={"negative": 0.3333333333, "positive": 0.6666666667},
    )
    handout = Handout(
        id="h1",
        model_name="sentiment",
        model_version=3,
        handed_to="ann",
        handed_out_at=now,
        expires_at=now + timedelta(hours=24),
        candidates=10,
        random_share=0.1,
    )
    item = queue_item(logged, pick, 2, handout)
    assert (item.prediction_id, item.text, item.label, item.model_name, item.model_version) == (
        "p1",
        "a text",
        "positive",
        "sentiment",
        3,
    )
    # the place among the items kept, not the ranking's (an item handed out meanwhile drops out)
    assert (item.rank, item.strategy) == (2, RANDOM)
    assert item.scores == {"negative": 0.333333, "positive": 0.666667} and item.margin == 0.123457
    assert lease_row(handout, item, pick.margin) == {
        "prediction_id": "p1",
        "model_name": "sentiment",
        "model_version": 3,
        "handout": "h1",
        "strategy": RANDOM,
        "rank": 2,
        "margin": 0.123456789,  # the lease keeps the margin unrounded
        "handed_to": "ann",
        "handed_out_at": now,
        "expires_at": now + timedelta(hours=24),
    }
