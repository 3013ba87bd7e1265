"""What the schemathesis fuzz tests share (``tests/integration/test_fuzz_control_api.py`` in process,
``tests/e2e/test_fuzz_serving.py`` against ``bentoml serve``): the checks every answer must pass,
deterministic hypothesis settings, the count of cases sent, and the defects found and not fixed yet.

Deterministic: hypothesis is derandomized (the same cases on every run and machine), keeps no example
database, and its cache (a Unicode table it would write to ``./.hypothesis``) lives in the temp folder.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

hypothesis.configuration.set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "driftline-hypothesis")

CHECKS = [
    not_a_server_error,  # no 5xx
    status_code_conformance,  # every status answered is documented for the operation
    content_type_conformance,
    response_schema_conformance,  # the body matches the documented schema of that status
    response_headers_conformance,
]
SEED = 12


def config() -> schemathesis.Config:
    """Schemathesis's settings: a fixed seed, derandomized generation, no example database, no cache."""
    return schemathesis.Config.from_dict(
        {"seed": SEED, "cache": {"enabled": False}, "generation": {"deterministic": True, "database": "none"}}
    )


def fuzz_settings(examples: int) -> hypothesis.settings:
    """``examples`` fuzzed cases per operation (the examples and coverage phases add their own), the same
    ones each run."""
    return hypothesis.settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # what a fixture sets up holds for every case, on purpose
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )


@dataclass(frozen=True)
class KnownDefect:
    """A defect the fuzzer finds, reported (issue 12) and not fixed yet. ``failure`` matches the check
    failure it causes, ``error`` the exception it raises in process (a 500 over HTTP). Each has a
    strict-xfail test of the right behaviour in the fuzz test modules: once it is fixed that test
    passes, which fails the run until the entry is removed here."""

    what: str
    failure: Callable[[Any, schemathesis.Case, Any], bool] = field(
        default=lambda failure, case, response: False
    )
    error: Callable[[BaseException, schemathesis.Case], bool] = field(default=lambda exc, case: False)


KNOWN_DEFECTS: dict[str, KnownDefect] = {}


class Tally:
    """The cases sent by each run ('fast', 'slow'), the statuses answered, the known defects met."""

    def __init__(self) -> None:
        self.cases: Counter[str] = Counter()
        self.statuses: Counter[tuple[str, str, int]] = Counter()
        self.seen: Counter[str] = Counter()

    def install(self, schema: Any) -> None:
        """Drop (and count) the check failures of :data:`KNOWN_DEFECTS` on ``schema``; keep all others."""

        def filter_failure(
            context: schemathesis.HookContext, failure: Any, case: schemathesis.Case, response: Any
        ) -> bool:
            for defect in KNOWN_DEFECTS.values():
                if defect.failure(failure, case, response):
                    self.seen[defect.what] += 1
                    return False
            return True

        schema.hook(filter_failure)

    def send(self, case: schemathesis.Case, run: str, headers: dict[str, str] | None, **kwargs: Any) -> None:
        """Send ``case`` (``headers`` over the generated ones) and run :data:`CHECKS` on the answer."""
        self.cases[run] += 1
        try:
            response = case.call_and_validate(headers=headers, checks=CHECKS, **kwargs)
        except Exception as exc:
            for defect in KNOWN_DEFECTS.values():
                if defect.error(exc, case):
                    self.seen[defect.what] += 1
                    return
            raise
        self.statuses[(run, case.operation.label, response.status_code)] += 1

    def report(self, capsys: pytest.CaptureFixture[str], title: str, run: str) -> int:
        """Print what ``run`` sent and met (shown without ``-s``); returns its number of cases."""
        with capsys.disabled():
            print(f"\n{title} ({run}): {self.cases[run]} cases")
            by_operation: dict[str, list[str]] = {}
            for (sent_by, label, status), n in sorted(self.statuses.items()):
                if sent_by != run:
                    continue
                by_operation.setdefault(label, []).append(f"{status}x{n}")
            for label, answers in by_operation.items():
                print(f"  {label}: {' '.join(answers)}")
            for what, times in self.seen.items():
                print(f"  known defect met {times} times: {what}")
        return self.cases[run]


def all_selected(request: pytest.FixtureRequest, tests: tuple[str, ...]) -> None:
    """Skip a count check unless every test it counts runs in this session (e.g. not under ``-k``)."""
    selected = {getattr(item, "originalname", None) or item.name for item in request.session.items}
    if not selected >= set(tests):
        pytest.skip(f"counts only when all of {', '.join(tests)} run")
