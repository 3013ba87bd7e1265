"""`driftline replay` on a file like a user's own (issue 10): e-mail-like texts, many over 2,000
characters and some over 5,000, with INTEGER labels (0/1 in the file, and a class 2 that first appears
after the bootstrap rows). Halfway through, the prior shifts from 90/10 to 10/90 and the texts change
(market-news subject lines over the old bodies, each class now wearing the other's topic). Real
`bentoml serve` and `driftline scheduler`, a 1-layer model, a check every 100 rows: the replay reaches
the end with nothing refused, and a retraining run is queued after the shift, not before."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd

from driftline.session import SessionConfig, run_session, session_settings
from registry.store import Registry
from tests.models import TINY_TRAIN
from tests.textgen import market_rows, topic_rows

BOOT = 300  # rows that train v1 (30 % of them held out)
CHANGE_AT = 200  # stream rows before the shift
AFTER = 300  # stream rows after it
SIGN_OFFS = [
    "Please see the notes below.",
    "Let me know if you have any questions.",
    "Thanks again for your help with this.",
    "I will forward this to the rest of the team.",
    "Sorry for the long message, there is a lot to cover.",
    "We can talk about it at the meeting on Monday.",
    "The attached file has the full details.",
]


def pools(seed: int) -> dict[str, list[str]]:
    """Sentences by topic: sports, food, weather (tests.textgen), market moves up and down."""
    by_topic = {
        topic: [r["text"] for r in topic_rows(300, seed=seed, labels=(topic,))]
        for topic in ("sports", "food", "weather")
    }
    market = market_rows(400, seed=seed)
    by_topic["up"] = [r["text"] for r in market if r["label"] == "sports"]  # the rising half
    by_topic["down"] = [r["text"] for r in market if r["label"] == "food"]
    return by_topic


def email(rng: random.Random, subject: str, body: list[str], length: int) -> str:
    """``Subject: ...`` then paragraphs of topical sentences and sign-offs, about ``length`` characters.
    The first sentence is topical: the head (what the model reads) carries the class."""
    sentences = [rng.choice(body)]
    while sum(len(s) + 1 for s in sentences) < length:
        sentences.append(rng.choice(body) if rng.random() < 0.6 else rng.choice(SIGN_OFFS))
    paragraphs = [" ".join(sentences[i : i + 6]) for i in range(0, len(sentences), 6)]
    return f"Subject: {subject}\n\n" + "\n\n".join(paragraphs)


def stream_file(path: Path) -> Path:
    rng = random.Random(10)
    text = pools(seed=4)
    rows = []
    for i in range(BOOT + CHANGE_AT + AFTER):
        length = rng.choice([rng.randint(200, 900), rng.randint(1000, 3000), rng.randint(5200, 9000)])
        if i < BOOT + CHANGE_AT:  # 90 % class 0 (sports), 10 % class 1 (food)
            label = 0 if rng.random() < 0.9 else 1
            topic = "sports" if label == 0 else "food"
            rows.append({"text": email(rng, rng.choice(text[topic]), text[topic], length), "label": label})
        elif (i - BOOT - CHANGE_AT) % 25 == 24:  # a class v1 never trained on
            rows.append(
                {"text": email(rng, rng.choice(text["weather"]), text["weather"], length), "label": 2}
            )
        else:  # 10 % class 0, 90 % class 1; market subjects, and each class now has the other's topic
            label = 0 if rng.random() < 0.1 else 1
            subject, topic = ("up", "food") if label == 0 else ("down", "sports")
            rows.append({"text": email(rng, rng.choice(text[subject]), text[topic], length), "label": label})
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")  # integers in the file
    return path


def test_long_texts_and_integer_labels_replay_to_the_end_and_retrain_after_the_shift(tmp_path: Path) -> None:
    data = stream_file(tmp_path / "mail.jsonl")
    frame = pd.read_json(data, lines=True)
    assert (frame["text"].str.len() > 5000).sum() > 50 and frame["label"].dtype.kind == "i"
    config = SessionConfig(
        data=data,
        text_col="text",
        label_col="label",
        out=tmp_path / "out",
        bootstrap_rows=BOOT,
        bootstrap_heldout=0.3,
        window=100,
        check_every=100,
        label_delay=20,
        policy="drift",
        train=TINY_TRAIN.to_dict(),
        monitor={"min_labels_floor": 100},
    )
    said: list[str] = []
    summary = run_session(config, say=said.append)
    output = "\n".join(said)

    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["interrupted"] is False and metrics["ended_early"] is None, output
    assert metrics["rows"] == CHANGE_AT + AFTER == metrics["stream_rows"], output
    assert metrics["rows_refused"] == 0 and metrics["rows_refused_reasons"] == {}, output
    assert metrics["labels_refused"] == 0 and metrics["labels_sent"] == CHANGE_AT + AFTER, output
    # said before the replay: how many texts are long; none over the service's limits
    assert metrics["preflight"]["over_chars"] == 0 and metrics["preflight"]["long_texts"] > 100
    assert any("rows are longer than 2,000 characters" in line for line in said), output
    # v1 knows every class of the file, as the strings the replay sends
    registry = Registry.open(session_settings(tmp_path / "out" / "workspace"))
    assert registry.get_version("sentiment", 1).labels == ("0", "1", "2")
    registry.close()

    queued = [c for c in summary.checks if c["decision"] == "retrain"]
    assert queued and all(c["row"] > CHANGE_AT for c in queued), [
        (c["row"], c["reason"]) for c in summary.checks
    ]
    assert summary.runs and all(r["row"] > CHANGE_AT for r in summary.runs), summary.runs
