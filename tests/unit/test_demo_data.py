"""Parsing of the VADER ground-truth files (the data itself is fetched by the demo, not here)."""

from __future__ import annotations

import pytest

from driftline.demo_data import label_for, parse_ground_truth


@pytest.mark.parametrize(
    ("score", "label"),
    [
        (-4.0, "negative"),
        (-0.5, "negative"),
        (-0.49, "neutral"),
        (0.0, "neutral"),
        (0.49, "neutral"),
        (0.5, "positive"),
        (3.9, "positive"),
    ],
)
def test_label_thresholds(score: float, label: str) -> None:
    assert label_for(score) == label


def test_parse_ground_truth_handles_crlf_latin1_and_entities() -> None:
    raw = (
        "1\t2.5\tA caf\xe9 worth the trip &amp; the wait.\r\n"
        "2\t-1.2\tDull.\tstill the text\r\n"
        "3\t0.1\t   \r\n"
        "\r\n"
    ).encode("latin-1")
    rows = parse_ground_truth(raw, "tweets")
    assert rows == [
        {
            "id": "tweets/1",
            "text": "A café worth the trip & the wait.",
            "score": 2.5,
            "label": "positive",
            "domain": "tweets",
        },
        {
            "id": "tweets/2",
            "text": "Dull.\tstill the text",
            "score": -1.2,
            "label": "negative",
            "domain": "tweets",
        },
    ]
