"""Checks of client input that name the field and the limit. Pure functions: easy to test."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from registry.errors import ErrorCode, error_body


@dataclass(frozen=True)
class Problem:
    field: str
    message: str
    limit: int | None = None

    def body(self) -> dict[str, Any]:
        details: dict[str, Any] = {"field": self.field}
        if self.limit is not None:
            details["limit"] = self.limit
        return error_body(ErrorCode.INVALID_INPUT, f"{self.field}: {self.message}", details)


def input_problem(model: type[BaseModel], body: bytes) -> Problem | None:
    """What is wrong with ``body`` as the request ``model`` (BentoML's input model of an API), if
    anything: the first error, its field written as ``items[0].label``, or ``body`` when it is not JSON.
    An empty body is ``{}``, as BentoML reads it."""
    try:
        model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_context=False, include_input=False)[0]
        field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
        return Problem(field.lstrip(".") or "body", error["msg"])
    return None


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


# A \uXXXX escape of a UTF-16 surrogate in raw JSON, with the run of backslashes before it (an even run
# means the backslashes escape each other and no escape starts here): a high surrogate may be followed
# by its low half (a valid pair, kept); any other surrogate escape stands alone.
_SURROGATE_ESCAPE = re.compile(
    rb"(\\+)u([dD][89abAB][0-9a-fA-F]{2})(\\u[dD][c-fC-F][0-9a-fA-F]{2})?|(\\+)u([dD][c-fC-F][0-9a-fA-F]{2})"
)


def repair_lone_surrogates(body: bytes) -> bytes:
    r"""Raw JSON with every lone surrogate escape (``"\ud800"``) replaced by ``\ufffd``.

    JSON allows such escapes, but they are no text: the request parser refuses them (400), no
    database stores them and no tokenizer reads them. Replacing them here means the text is served
    and logged with U+FFFD where the broken character was, as :func:`common.texts.clean_text` does
    for NUL. Valid surrogate pairs (emoji sent as ``\ud83d\ude00``) are kept.
    """
    if b"\\u" not in body:
        return body

    def fix(m: re.Match[bytes]) -> bytes:
        slashes = m.group(1) or m.group(4)
        if len(slashes) % 2 == 0 or m.group(3):  # not an escape, or a valid pair
            return m.group(0)
        return slashes + b"ufffd"

    return _SURROGATE_ESCAPE.sub(fix, body)
