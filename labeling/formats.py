"""The formats a hand-out of the label queue travels in: flat JSON records (the API's, and the CLI's jsonl
and CSV) and Label Studio tasks, and the labels read back from a Label Studio export."""

from __future__ import annotations

from typing import Any

from registry.entities import Handout, QueueItem

FORMATS = ("jsonl", "csv", "label-studio")
LABEL_STUDIO_FROM = "label"  # the <Choices name=...> of the labeling config the tasks are made for
LABEL_STUDIO_TO = "text"  # the <Text name=...> it labels


def item_record(item: QueueItem) -> dict[str, Any]:
    """One item as a flat JSON object (the API's and the jsonl format's)."""
    return {
        "prediction_id": item.prediction_id,
        "text": item.text,
        "created_at": item.created_at.isoformat(),
        "model_name": item.model_name,
        "model_version": item.model_version,
        "predicted_label": item.label,
        "scores": item.scores,
        "strategy": item.strategy,
        "rank": item.rank,
        "margin": item.margin,
    }


def label_studio_tasks(handout: Handout) -> list[dict[str, Any]]:
    """Label Studio tasks (``data`` for a ``<Text name="text">`` labeled with ``<Choices name="label">``),
    each with the model's prediction pre-selected: its label, ``score`` (the calibrated top probability)
    and ``model_version``. The prediction id rides in ``data``, so an export of the labeled tasks
    imports back with ``driftline labels import FILE --format label-studio``."""
    return [
        {
            "data": {
                "text": item.text,
                "prediction_id": item.prediction_id,
                "strategy": item.strategy,
                "rank": item.rank,
                "handout": handout.id,
            },
            "predictions": [
                {
                    "model_version": f"{item.model_name} v{item.model_version}",
                    "score": item.scores.get(item.label, 0.0),
                    "result": [
                        {
                            "from_name": LABEL_STUDIO_FROM,
                            "to_name": LABEL_STUDIO_TO,
                            "type": "choices",
                            "value": {"choices": [item.label]},
                        }
                    ],
                }
            ],
        }
        for item in handout.items
    ]


def label_studio_labels(tasks: Any, source: str) -> list[tuple[str, str]]:
    """(prediction id, label) of each annotated task of a Label Studio JSON export: the last annotation
    not cancelled, its first choice. Tasks without one are skipped; a task that is not what
    :func:`label_studio_tasks` made raises ValueError naming it."""
    if not isinstance(tasks, list):
        raise ValueError(
            f"{source}: a Label Studio export is a JSON list of tasks, got {type(tasks).__name__}"
        )
    out: list[tuple[str, str]] = []
    for n, task in enumerate(tasks):
        where = f"{source}: task {n}"
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("prediction_id"), str):
            raise ValueError(
                f"{where} has no data.prediction_id (tasks must come from `driftline labels queue`)"
            )
        choices = None
        for annotation in task.get("annotations") or []:
            if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
                continue
            for result in annotation.get("result") or []:
                value = result.get("value") if isinstance(result, dict) else None
                if isinstance(value, dict) and value.get("choices"):
                    choices = value["choices"]
                    break
        if choices is None:
            continue
        if not isinstance(choices[0], str):
            raise ValueError(f"{where}: its choice is not a label: {choices[0]!r}")
        out.append((data["prediction_id"], choices[0]))
    return out
