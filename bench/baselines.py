"""Bag-of-words yardsticks, computed offline (seconds of CPU, no service, no transformer): TF-IDF of words
then a logistic regression (scikit-learn).

- :func:`fit_bow` fits one such model; ``bench.streams`` uses it frozen on v1's rows to show how much
  each segment's change hurts a model that is never retrained.
- :func:`bow_refit` is the reference row of ``bench.learning`` (and so of ``bench.streams``), named
  ``bow-refit``: the cheap baseline a pragmatic engineer tries first (issue 27). It is refitted, with
  balanced class weights, at the start of every window of the replayed stream on every label
  available then, and scores that window's rows with that model. A session sends row ``i``'s label
  once row ``i + label_delay`` has been served, so before the window that starts at stream row ``s``
  the labels are v1's rows and stream rows ``0 .. s - label_delay - 1``; the same holds here. It uses
  every row's label (as the ``drift``, ``never`` and ``every-window`` sessions do; the label-budget
  sessions label fewer rows).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

REFERENCE = "bow-refit"

Predict = Callable[[Sequence[str]], list[str]]
Fit = Callable[[Sequence[str], Sequence[str]], Predict]


def fit_bow(
    texts: Sequence[str], labels: Sequence[str], *, balanced: bool = True, c: float = 10.0
) -> Predict:
    """TF-IDF of words (sublinear term frequency) and a logistic regression with inverse regularization
    ``c`` (class weights balanced unless ``balanced`` is false), fitted on ``texts``; returns its
    predict function. With one class in ``labels`` it predicts that class."""
    classes = sorted(set(map(str, labels)))
    if len(classes) == 1:
        only = classes[0]
        return lambda batch: [only] * len(batch)
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(sublinear_tf=True)
    model = LogisticRegression(max_iter=2000, C=c, class_weight="balanced" if balanced else None)
    model.fit(vectorizer.fit_transform(list(texts)), [str(y) for y in labels])

    def predict(batch: Sequence[str]) -> list[str]:
        return [str(y) for y in model.predict(vectorizer.transform(list(batch)))] if len(batch) else []

    return predict


def macro_f1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Macro-F1 over the classes that occur as truth or prediction, as the sessions' summaries score."""
    if not len(truth):
        return float("nan")
    from sklearn.metrics import f1_score

    return float(f1_score(list(truth), list(predicted), average="macro", zero_division=0))


def refit_predictions(
    boot: pd.DataFrame, rows: pd.DataFrame, *, window: int, label_delay: int, fit: Fit = fit_bow
) -> tuple[list[str], list[dict[str, Any]]]:
    """Each of ``rows``' predictions (in order) by the model fitted before its window, and one record per
    window: its first and last row, the labels it was fitted on and the fit's seconds. ``boot`` and
    ``rows`` have ``text`` and ``label`` columns; ``rows`` are the replayed rows in stream order."""
    if window < 1 or label_delay < 0:
        raise ValueError(f"window must be >= 1 and label_delay >= 0 (got {window}, {label_delay})")
    texts, labels = rows["text"].astype(str).tolist(), rows["label"].astype(str).tolist()
    boot_texts, boot_labels = boot["text"].astype(str).tolist(), boot["label"].astype(str).tolist()
    predicted: list[str] = []
    windows = []
    for start in range(0, len(rows), window):
        known = max(start - label_delay, 0)  # stream rows whose label has arrived before row `start`
        started = time.perf_counter()
        predict = fit(boot_texts + texts[:known], boot_labels + labels[:known])
        fit_s = time.perf_counter() - started
        end = min(start + window, len(rows))
        predicted.extend(predict(texts[start:end]))
        windows.append(
            {"first_row": start, "last_row": end - 1, "labels": len(boot) + known, "fit_s": round(fit_s, 3)}
        )
    return predicted, windows


def scores(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Rows, accuracy and macro-F1."""
    right = sum(t == p for t, p in zip(truth, predicted, strict=True))
    return {
        "n": len(truth),
        "accuracy": right / len(truth) if len(truth) else float("nan"),
        "macro_f1": macro_f1(truth, predicted),
    }


def by_domain(rows: pd.DataFrame, predicted: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per domain, in order of appearance (as the sessions' ``domains``): where it sits and its scores."""
    if "domain" not in rows.columns:
        return {}
    frame = rows.assign(predicted=list(predicted), row=range(len(rows))).dropna(subset=["domain"])
    out = {}
    for name, group in frame.groupby(frame["domain"].astype(str), sort=False):
        out[str(name)] = {
            "first_row": int(group["row"].iloc[0]),
            "last_row": int(group["row"].iloc[-1]),
            **scores(group["label"].astype(str).tolist(), group["predicted"].tolist()),
        }
    return out


def bow_refit(
    boot: pd.DataFrame, rows: pd.DataFrame, *, window: int, label_delay: int, fit: Fit = fit_bow
) -> dict[str, Any]:
    """The ``bow-refit`` reference on one stream: served accuracy and macro-F1 over ``rows``, per domain,
    the number of refits, the fit seconds (all fits together) and each window's record."""
    started = time.perf_counter()
    predicted, windows = refit_predictions(boot, rows, window=window, label_delay=label_delay, fit=fit)
    overall = scores(rows["label"].astype(str).tolist(), predicted)
    return {
        "accuracy": overall["accuracy"],
        "macro_f1": overall["macro_f1"],
        "rows": overall["n"],
        "domains": by_domain(rows, predicted),
        "refits": len(windows),
        "labels_last_fit": windows[-1]["labels"] if windows else len(boot),
        "fit_seconds": round(sum(w["fit_s"] for w in windows), 3),
        "wall_s": round(time.perf_counter() - started, 3),
        "window": window,
        "label_delay": label_delay,
        "model": "TF-IDF (sublinear tf) + logistic regression, C=10, balanced class weights",
        "windows": windows,
    }
