"""Evidently: the embedding-drift score and a report a person can open (HTML) or parse (JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPORT_HTML = "drift_report.html"
REPORT_JSON = "drift_report.json"


def _frame(texts: Any, predicted: Any, embeddings: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(
        np.asarray(embeddings, dtype=np.float32), columns=[f"e{i}" for i in range(embeddings.shape[1])]
    )
    frame["text_length"] = [len(t) for t in texts]
    frame["predicted"] = list(predicted)
    return frame


class PCAProjection:
    """Stands in for t-SNE in Evidently's embedding-drift picture.

    Evidently's ``EmbeddingsDriftMetric`` draws its contour plot from a t-SNE of up to 5,000 sampled
    rows: 1,000 gradient iterations that took over a minute of a 2-core machine per check, for a picture
    only (the drift score comes from the classifier before it). A 2-D PCA of the same rows draws the same
    kind of picture in a small part of the check's time (docs/results.md, "Drift-check speed";
    ``python -m bench.monitor``).
    """

    def __init__(self, n_components: int = 2, **_ignored: Any) -> None:
        self.n_components = n_components

    def fit_transform(self, x: Any) -> np.ndarray:
        from sklearn.decomposition import PCA

        return PCA(n_components=self.n_components, svd_solver="randomized", random_state=0).fit_transform(
            np.asarray(x, dtype=np.float32)
        )


def _use_fast_projection() -> None:
    from evidently.legacy.metrics.data_drift import embeddings_drift

    if not hasattr(embeddings_drift, "TSNE"):  # a later Evidently drew it differently: nothing to replace
        return
    embeddings_drift.TSNE = PCAProjection


def evidently_drift(reference: pd.DataFrame, window: Any, *, report_dir: Path | None = None) -> float:
    """Run Evidently on reference vs window and return the EmbeddingsDrift score; with ``report_dir``,
    also write ``drift_report.html`` / ``.json`` there."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift, ValueDrift

    _use_fast_projection()
    emb_ref = np.array(reference["embedding"].tolist(), dtype=np.float32)
    keep = (
        list(window.embedding_rows) if window.embedding_rows is not None else list(range(len(window.texts)))
    )
    if len(keep) != len(window.embeddings):
        raise ValueError(f"{len(window.embeddings)} embeddings for {len(keep)} embedding rows")
    ref = _frame(reference["text"], reference["predicted"], emb_ref)
    cur = _frame([window.texts[i] for i in keep], [window.predicted[i] for i in keep], window.embeddings)
    columns = [c for c in ref.columns if c.startswith("e")]
    definition = DataDefinition(
        numerical_columns=["text_length"], categorical_columns=["predicted"], embeddings={"pooled": columns}
    )
    report = Report(
        [
            EmbeddingsDrift(embeddings_name="pooled"),
            ValueDrift(column="predicted"),
            ValueDrift(column="text_length"),
        ]
    )
    snapshot = report.run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
    )
    summary = snapshot.dict()
    score = float("nan")
    for metric in summary["metrics"]:
        name = str(metric.get("metric_name") or metric.get("metric_id") or "")
        if name.startswith("EmbeddingsDrift"):
            score = float(metric["value"])
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(report_dir / REPORT_HTML))
        (report_dir / REPORT_JSON).write_text(json.dumps(summary, default=str, indent=1))
    return score
