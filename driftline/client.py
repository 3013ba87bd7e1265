"""The replay's HTTP client of a running Driftline: ``/predict``, ``/feedback``, the label queue, drift
check requests, runs and the champion, with the service's refusals told apart from its failures.

A 4xx about what a request carries raises :class:`RequestRefused` with the service's reason, folded so
that rows refused for one cause share it (:func:`fold_numbers`): its rows may fare better one by one. A
5xx, or a 401/403 (about the caller, not the rows), raises :class:`ServiceError`: the replay cannot go on.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from registry.errors import DriftlineError, ErrorCode

# 4xx answers that are about the caller, not about what the request carries: no row would fare better alone
NOT_ABOUT_ROWS = (401, 403)
VERSION_PROBE = "driftline replay: which model version answers?"  # the text of served_version()


@dataclass(frozen=True)
class Refusal:
    """A 4xx answer: its status, the service's error code (empty when the body is not JSON) and message."""

    status: int
    error: str
    message: str

    @classmethod
    def of(cls, response: httpx.Response) -> Refusal:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "message" in body:
            return cls(response.status_code, str(body.get("error") or ""), str(body["message"]))
        return cls(response.status_code, "", response.text.strip() or response.reason_phrase)

    @property
    def reason(self) -> str:
        """``422 INVALID_INPUT: texts[0]: has N characters; the limit is 100000 (DRIFTLINE_MAX_TEXT_CHARS)``:
        the same for every row refused for the same cause, so reasons can be counted."""
        return f"{self.status}{' ' + self.error if self.error else ''}: {fold_numbers(self.message)}"


# a count of characters, bytes, ... that is not the limit ("has 2581 characters", not "the limit of 2000 bytes")
_COUNTED = re.compile(r"(?<!limit of )(?<!limit is )\b\d[\d,]*(?= (?:characters|bytes|texts|items|tokens)\b)")
_HEX_IDS = re.compile(r"\b[0-9a-f]{32}\b")  # prediction ids


def fold_numbers(message: str, *, limit: int = 300) -> str:
    """``message`` without what is particular to one row: counts of characters, bytes, texts or items
    become N, prediction ids <id>; limits and indexes stay. Cut to ``limit`` characters."""
    folded = _HEX_IDS.sub("<id>", _COUNTED.sub("N", " ".join(message.split())))
    return folded if len(folded) <= limit else folded[: limit - 3] + "..."


class RequestRefused(DriftlineError):
    """The service refused a request for what it carries (a 4xx): its rows may fare better one by one."""

    code = ErrorCode.INVALID_INPUT

    def __init__(self, message: str, *, refusal: Refusal) -> None:
        super().__init__(message)
        self.refusal = refusal


class ServiceError(DriftlineError):
    """The service failed a request (a 5xx), or refused the caller (401, 403): the replay cannot go on."""

    code = ErrorCode.UNAVAILABLE

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def encode_body(body: Any) -> bytes:
    """A JSON body as httpx would send it; a lone surrogate in a text (UTF-8 cannot carry one) goes as a
    ``\\ud800`` escape instead of failing here: the service decides what to do with it."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(body, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode("ascii")


def predict_body_bytes(texts: Sequence[str]) -> int:
    return len(encode_body({"texts": list(texts)}))


class DriftlineClient:
    """The few HTTP calls the replay makes: predict, feedback, runs, champion, served version."""

    def __init__(self, base_url: str, *, model_name: str, token: str | None, timeout_s: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s)
        self.model_name = model_name

    def close(self) -> None:
        self.http.close()

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        status = response.status_code
        if status >= 400:
            message = f"{method} {path} answered {status}: {response.text[:300]}"
            if status < 500 and status not in NOT_ABOUT_ROWS:
                raise RequestRefused(message, refusal=Refusal.of(response))
            raise ServiceError(message, status=status)
        return response.json()

    def _post(self, path: str, body: Any) -> Any:
        headers = {"Content-Type": "application/json"}
        return self._json("POST", path, content=encode_body(body), headers=headers)

    def wait_ready(self, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not alive():
                raise DriftlineError("the service exited before it was ready", code=ErrorCode.UNAVAILABLE)
            try:
                if self.http.get("/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise DriftlineError(f"the service was not ready after {timeout_s:.0f} s", code=ErrorCode.UNAVAILABLE)

    def predict(self, texts: Sequence[str]) -> tuple[int, list[dict[str, Any]]]:
        """Raises :class:`RequestRefused` on a 4xx, :class:`ServiceError` on a 5xx."""
        body = self._post("/predict", {"texts": list(texts)})
        return int(body["model_version"]), body["predictions"]

    def feedback(self, items: Sequence[dict[str, Any]]) -> int:
        return int(self._post("/feedback", {"items": list(items)})["accepted"])

    def label_queue(self, limit: int) -> list[dict[str, Any]]:
        """The champion's label queue: up to ``limit`` items, leased to this client's token."""
        body = self._json("GET", "/api/label-queue", params={"model": self.model_name, "limit": limit})
        return list(body["items"])

    def request_check(self) -> int:
        return int(self._json("POST", "/api/checks", json={"model_name": self.model_name})["id"])

    def check_request(self, request_id: int) -> dict[str, Any]:
        return self._json("GET", f"/api/checks/requests/{request_id}")

    def queue_run(self, reason: str, config: dict[str, Any] | None = None) -> int:
        """Queue a run; ``config`` is a run contract's record (``contracts.RunSpec.to_record``): the
        body of ``POST /api/runs`` with the model and the reason."""
        body = {**(config or {}), "model_name": self.model_name, "reason": reason}
        return int(self._json("POST", "/api/runs", json=body)["id"])

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return self._json("GET", "/api/runs", params={"model_name": self.model_name, "limit": limit})

    def champion_version(self) -> int | None:
        response = self.http.get(f"/api/models/{self.model_name}/aliases/champion")
        return int(response.json()["version"]) if response.status_code == 200 else None

    def served_version(self) -> int:
        """The version that answers ``/predict`` now: one probe text, which the service logs like any
        prediction (a few unlabeled rows per hot swap the replay waits for). Not ``/metrics``: its gauge can
        lag behind what serves (and did, when two workspaces shared BentoML's Prometheus files)."""
        return self.predict([VERSION_PROBE])[0]
