"""Checks of client input that name the field and the limit. Pure functions: easy to test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    field: str
    message: str
    limit: int | None = None

    def body(self) -> dict[str, Any]:
        details: dict[str, Any] = {"field": self.field}
        if self.limit is not None:
            details["limit"] = self.limit
        return {"error": "INVALID_INPUT", "message": f"{self.field}: {self.message}", "details": details}


def check_texts(
    texts: Sequence[object], *, max_texts: int, max_chars: int, field: str = "texts"
) -> Problem | None:
    if len(texts) == 0:
        return Problem(field, "must hold at least 1 text", None)
    if len(texts) > max_texts:
        return Problem(
            field,
            f"holds {len(texts)} texts; the limit is {max_texts} (DRIFTLINE_MAX_TEXTS_PER_REQUEST)",
            max_texts,
        )
    for i, text in enumerate(texts):
        problem = check_text(text, f"{field}[{i}]", max_chars=max_chars)
        if problem is not None:
            return problem
    return None


def check_text(text: object, field: str, *, max_chars: int) -> Problem | None:
    if not isinstance(text, str):
        return Problem(field, f"must be a string, got {type(text).__name__}")
    if not text.strip():
        return Problem(field, "is empty")
    if len(text) > max_chars:
        return Problem(
            field,
            f"has {len(text)} characters; the limit is {max_chars} (DRIFTLINE_MAX_TEXT_CHARS)",
            max_chars,
        )
    return None


def check_feedback(items: Sequence[Any], *, max_items: int, max_chars: int) -> Problem | None:
    if len(items) == 0:
        return Problem("items", "must hold at least 1 item")
    if len(items) > max_items:
        return Problem(
            "items",
            f"holds {len(items)} items; the limit is {max_items} (DRIFTLINE_MAX_FEEDBACK_ITEMS)",
            max_items,
        )
    for i, item in enumerate(items):
        if (item.prediction_id is None) == (item.text is None):
            return Problem(
                f"items[{i}]", "give either prediction_id or text (with label), not both or neither"
            )
        if not item.label.strip():
            return Problem(f"items[{i}].label", "is empty")
        if item.text is not None:
            problem = check_text(item.text, f"items[{i}].text", max_chars=max_chars)
            if problem is not None:
                return problem
    return None
