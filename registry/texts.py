"""The identity of a text, shared by the prediction log, labels and training data."""

from __future__ import annotations

import hashlib


def text_key(text: str) -> str:
    """Whitespace folded, case kept: the form used for de-duplication."""
    return " ".join(text.split())


def text_hash(text: str) -> str:
    return hashlib.sha256(text_key(text).encode()).hexdigest()
