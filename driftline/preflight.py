"""What a stream holds that the service will refuse or cut, counted before a replay sends anything:
rows over the per-text limit, requests over the body limit, texts the model reads only the head of.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from driftline.client import encode_body
from driftline.replay_types import StreamRow
from registry.errors import InvalidInputError

LONG_TEXT_CHARS = 2000  # texts longer than this are reported before a replay: the model reads their head only


@dataclass(frozen=True)
class ServiceLimits:
    """The request limits of a service (``service.settings.ServeSettings``), as the replay needs them."""

    max_text_chars: int
    max_texts_per_request: int
    max_feedback_items: int
    max_body_bytes: int | None = None  # None: the service has no body limit

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServiceLimits:
        """The limits of a service started with exactly ``env``: its DRIFTLINE_* values, defaults for the
        rest (this process's own environment is not read)."""
        from pydantic import ValidationError

        from common.settings_env import from_values
        from service.settings import ServeSettings

        prefix = str(ServeSettings.model_config.get("env_prefix", "")).upper()
        upper = {k.upper(): v for k, v in env.items()}
        # raw strings, parsed by the settings' own validators
        values: dict[str, Any] = {
            name: upper[prefix + name.upper()]
            for name in ServeSettings.model_fields
            if prefix + name.upper() in upper
        }
        try:
            serve = from_values(ServeSettings, values)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = prefix + str(first["loc"][0]).upper() if first["loc"] else "service settings"
            raise InvalidInputError(f"{name}: {first['msg']} (got {first.get('input')!r})") from exc
        return cls(
            max_text_chars=serve.max_text_chars,
            max_texts_per_request=serve.max_texts_per_request,
            max_feedback_items=serve.max_feedback_items,
            max_body_bytes=getattr(serve, "max_body_bytes", None),
        )


@dataclass(frozen=True)
class Preflight:
    """What the stream holds that the service will refuse or cut, counted before anything is sent."""

    limits: ServiceLimits
    rows: int
    batch_size: int
    over_chars: int  # rows over the per-text limit: refused
    long_texts: int  # rows longer than long_chars: served, but the model reads their head only
    long_chars: int
    requests: int  # /predict requests of batch_size rows
    requests_over_body: int  # of them, over the body limit: their rows go one by one
    rows_over_body: int  # rows over the body limit on their own: not sent, counted as refused
    max_length: int | None = None  # the model's max_length, in tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        lim, n = self.limits, self.rows
        out = []
        if self.over_chars:
            out.append(
                f"{self.over_chars:,} of {n:,} rows are over the service's {lim.max_text_chars:,}-character limit "
                "(DRIFTLINE_MAX_TEXT_CHARS); they will be refused and counted"
            )
        if self.batch_size > lim.max_texts_per_request:
            out.append(
                f"requests of {self.batch_size} texts are over the service's limit of {lim.max_texts_per_request} "
                "(DRIFTLINE_MAX_TEXTS_PER_REQUEST); each will be refused and its rows sent one by one"
            )
        if self.requests_over_body:
            out.append(
                f"{self.requests_over_body:,} of {self.requests:,} requests ({self.batch_size} texts each) are over "
                f"the service's {lim.max_body_bytes:,}-byte body limit (DRIFTLINE_MAX_BODY_BYTES); their rows "
                "will be sent one by one"
            )
        if self.rows_over_body:
            out.append(
                f"{self.rows_over_body:,} of {n:,} rows are over the body limit on their own; they will not be "
                "sent, and are counted as refused"
            )
        if not out:
            body = f", {lim.max_body_bytes:,} bytes per request" if lim.max_body_bytes else ""
            out.append(
                f"service limits: {lim.max_text_chars:,} characters per text{body}; no row is over them"
            )
        if self.long_texts:
            head = f"the first {self.max_length} tokens" if self.max_length else "its first max_length tokens"
            out.append(
                f"{self.long_texts:,} of {n:,} rows are longer than {self.long_chars:,} characters; the model "
                f"reads {head} of each"
            )
        return out


def preflight(
    rows: Sequence[StreamRow],
    limits: ServiceLimits,
    *,
    batch_size: int,
    long_chars: int = LONG_TEXT_CHARS,
    max_length: int | None = None,
) -> Preflight:
    """Count, without sending anything, the rows and requests that are over the service's limits."""
    lengths = [len(r.text) for r in rows]
    requests = len(range(0, len(rows), batch_size))
    over_body = alone_over = 0
    if limits.max_body_bytes is not None:
        # a body is {"texts":[...]}: 12 bytes, the texts as JSON strings, a comma between two
        sizes = [len(encode_body(r.text)) for r in rows]
        alone_over = sum(12 + size > limits.max_body_bytes for size in sizes)
        for first in range(0, len(rows), batch_size):
            chunk = sizes[first : first + batch_size]
            over_body += 12 + sum(chunk) + len(chunk) - 1 > limits.max_body_bytes
    return Preflight(
        limits=limits,
        rows=len(rows),
        batch_size=batch_size,
        over_chars=sum(n > limits.max_text_chars for n in lengths),
        long_texts=sum(n > long_chars for n in lengths),
        long_chars=long_chars,
        requests=requests,
        requests_over_body=over_body,
        rows_over_body=alone_over,
        max_length=max_length,
    )
