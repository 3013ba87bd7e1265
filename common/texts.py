"""The identity of a text, shared by the prediction log, labels and training data, and the one rule
that makes any client's text storable on every database Driftline runs on.

PostgreSQL refuses NUL (U+0000) in text columns, and no database (nor the tokenizer) takes a lone
UTF-16 surrogate (U+D800..U+DFFF), which a JSON body can carry as ``"\\ud800"``. :func:`clean_text`
replaces each such character with U+FFFD, the Unicode replacement character; every other character
(right-to-left marks, emoji, control characters) is kept as sent. Texts are cleaned where they enter
(``/predict``, ``/feedback``, file imports) and again by the registry before every write, so the model
sees, and the log keeps, exactly the text that was stored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` with NUL and lone surrogates replaced by U+FFFD (the same object when there are none)."""
    return _UNSTORABLE.sub(REPLACEMENT, text) if _UNSTORABLE.search(text) else text


def has_unstorable(text: str) -> bool:
    return _UNSTORABLE.search(text) is not None


def text_key(text: str) -> str:
    """Whitespace folded, case kept: the form used for de-duplication."""
    return " ".join(clean_text(text).split())


def text_hash(text: str) -> str:
    return hashlib.sha256(text_key(text).encode()).hexdigest()


def clean_label(label: str) -> str:
    """The one label rule, applied everywhere (files, ``/feedback``, imports, the registry): surrounding
    whitespace is stripped and text cleaned as :func:`clean_text`; case is kept, so ``Spam`` and
    ``spam`` are different labels (and a file that holds both is refused as ambiguous)."""
    return clean_text(label.strip())


def label_fold(label: str) -> str:
    """The form in which two labels that differ only in case or spacing compare equal."""
    return " ".join(label.split()).casefold()


def label_hint(unknown: list[str], known: Sequence[str]) -> str:
    """``; did you mean 'positive' for 'Positive'? (labels are case-sensitive)`` when an unknown label
    is a known one in another case or spacing; empty otherwise."""
    folded = {label_fold(k): k for k in known}
    pairs = [(u, folded[label_fold(u)]) for u in unknown if label_fold(u) in folded]
    if not pairs:
        return ""
    shown = ", ".join(f"{k!r} for {u!r}" for u, k in pairs[:5])
    return f"; did you mean {shown}? (labels are case-sensitive)"
