"""A drift check on synthetic windows: signals fire where drift was planted, Evidently writes its report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from monitor.check import CheckConfig, Window, compute_check

LABELS = ("neg", "neu", "pos")


def texts(rng: np.random.Generator, n: int, words: float) -> list[str]:
    return [" ".join(["word"] * max(1, int(k))) for k in rng.poisson(words, n)]


def reference(rng: np.random.Generator, n: int = 400) -> pd.DataFrame:
    predicted = rng.choice(LABELS, n, p=[0.45, 0.1, 0.45])
    probs = np.full((n, 3), 0.05)
    probs[np.arange(n), [LABELS.index(p) for p in predicted]] = 0.9
    t = texts(rng, n, 12)
    return pd.DataFrame(
        {
            "text": t,
            "label": predicted,
            "predicted": predicted,
            "probs": probs.tolist(),
            "text_length": [len(x) for x in t],
            "embedding": rng.normal(0, 1, (n, 16)).tolist(),
        }
    )


def window(rng: np.random.Generator, n: int, *, drift: bool) -> Window:
    shares = [0.25, 0.5, 0.25] if drift else [0.45, 0.1, 0.45]
    predicted = list(rng.choice(LABELS, n, p=shares))
    confidence = 0.5 if drift else 0.9
    probs = np.full((n, 3), (1 - confidence) / 2)
    probs[np.arange(n), [LABELS.index(p) for p in predicted]] = confidence
    emb = rng.normal(0, 1, (n, 16))
    if drift:
        emb[:, :3] += 1.0
    truth = [p if (not drift or rng.random() < 0.6) else "neg" for p in predicted]
    return Window(
        texts=texts(rng, n, 30 if drift else 12),
        predicted=predicted,
        probs=probs,
        true_labels=truth,
        embeddings=emb,
    )


def test_quiet_window_raises_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    outcome = compute_check(
        reference(rng),
        window(rng, 300, drift=False),
        labels=LABELS,
        temperature=1.0,
        reference_accuracy=1.0,
        report_dir=tmp_path,
    )
    assert outcome.drifted_signals == ()
    assert not outcome.signal("estimated_accuracy_drop").drifted  # type: ignore[union-attr]
    assert not outcome.signal("realized_accuracy_drop").drifted  # type: ignore[union-attr]


def test_drifted_window_fires_every_signal_and_writes_the_report(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    outcome = compute_check(
        reference(rng),
        window(rng, 300, drift=True),
        labels=LABELS,
        temperature=1.0,
        reference_accuracy=1.0,
        report_dir=tmp_path,
        config=CheckConfig(),
    )
    assert set(outcome.drifted_signals) == {
        "prediction_drift",
        "text_length_drift",
        "embedding_drift",
        "realized_accuracy_drop",  # labels say the model is wrong more often: drift of P(label | text)
    }
    assert outcome.signal("estimated_accuracy_drop").drifted  # type: ignore[union-attr]
    assert outcome.signal("realized_accuracy_drop").drifted  # type: ignore[union-attr]
    assert outcome.signal("embedding_drift").score > 0.8  # type: ignore[union-attr]
    assert (tmp_path / "drift_report.html").stat().st_size > 100_000
    assert "EmbeddingsDrift" in (tmp_path / "drift_report.json").read_text()
    scores = outcome.scores()
    assert scores["prediction_drift"]["drifted"] and "current_share" in scores["prediction_drift"]
