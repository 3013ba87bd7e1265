"""The one rule for storable text and labels, and the repair of lone surrogate escapes in raw JSON."""

from __future__ import annotations

import json

import pytest

from common.texts import REPLACEMENT, clean_label, clean_text, label_hint, text_hash
from service.validation import repair_lone_surrogates


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("plain", "plain"),
        ("nul \x00 byte", f"nul {REPLACEMENT} byte"),
        ("high \ud800 low \udfff", f"high {REPLACEMENT} low {REPLACEMENT}"),
        ("emoji 😀 and مرحبا and \u200f marks", "emoji 😀 and مرحبا and \u200f marks"),
        ("tab\tand\nnewline\x07bell", "tab\tand\nnewline\x07bell"),  # only what no database stores
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean
    assert clean_text(clean) == clean
    text_hash(raw)  # hashing never raises, whatever the text holds


def test_label_rule_strips_spaces_keeps_case() -> None:
    assert clean_label("  positive\n") == "positive"
    assert clean_label("Très Bien") == "Très Bien"
    assert label_hint(["Positive", "other"], ("positive", "negative")) == (
        "; did you mean 'positive' for 'Positive'? (labels are case-sensitive)"
    )
    assert label_hint(["other"], ("positive",)) == ""


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (rb'{"t": "a\ud800b"}', f"a{REPLACEMENT}b"),
        (rb'{"t": "\udc00\ud800"}', REPLACEMENT * 2),
        (rb'{"t": "\ud83d\ude00"}', "😀"),  # a valid pair is kept
        (rb'{"t": "\\ud800"}', "\\ud800"),  # an escaped backslash, then plain text
        (rb'{"t": "\\\ud800"}', f"\\{REPLACEMENT}"),
        (rb'{"t": "\ud800\\udc00"}', f"{REPLACEMENT}\\udc00"),
        (rb'{"t": "no escapes"}', "no escapes"),
    ],
)
def test_repair_lone_surrogates(body: bytes, text: str) -> None:
    assert json.loads(repair_lone_surrogates(body))["t"] == text
