"""Rows a database refuses never stop the prediction log, and user text never reaches a log line.

On SQLite and (when ``DRIFTLINE_TEST_DATABASE_URL`` is set) PostgreSQL: a NUL byte, a lone surrogate
and a 1 MB text among good rows are cleaned and stored; a row the database refuses (a duplicate id on
both, an over-long label on PostgreSQL) is isolated by splitting its batch, dropped and counted; every
good row around it is written and the writer keeps going.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest

from common.texts import REPLACEMENT
from registry.entities import NewLabel
from registry.errors import ConflictError, InvalidInputError
from registry.store import Registry
from service.predlog import REFUSED, SHUTDOWN, PredictionLog
from tests.fakes import prediction_id, prediction_rows

SECRET = "private words of a user"


def _with_text(row, text: str):  # type: ignore[no-untyped-def]
    return dataclasses.replace(row, text=text)


def test_poison_rows_are_cleaned_or_isolated_and_the_writer_goes_on(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    good = prediction_rows(40)
    registry.add_predictions(good[:1])  # row 0 is already stored: offering it again is refused
    nul = _with_text(prediction_rows(1, 100)[0], f"poison \x00 byte {SECRET}")
    surrogate = _with_text(prediction_rows(1, 101)[0], "lone \ud800 surrogate")
    huge = _with_text(prediction_rows(1, 102)[0], "x" * 1_000_000)
    rtl = _with_text(prediction_rows(1, 103)[0], "مرحبا بالعالم 👋🏽 שלום")
    duplicate = _with_text(good[0], f"duplicate id {SECRET}")
    batch = [*good[1:20], nul, duplicate, surrogate, *good[20:], huge, rtl]
    postgres = registry.engine.dialect.name == "postgresql"
    if postgres:  # PostgreSQL also refuses a label wider than its column
        batch.append(dataclasses.replace(prediction_rows(1, 104)[0], label="L" * 300))

    log = PredictionLog(registry.add_predictions, capacity=1000, batch_size=64, flush_interval_s=0.05)
    with caplog.at_level(logging.DEBUG):
        log.offer(batch)
        assert log.flush(30.0)
        log.offer(prediction_rows(5, 200))  # the writer is still going
        assert log.flush(10.0)
    refused = 2 if postgres else 1
    assert log.dropped_by_reason[REFUSED] == refused and log.dropped == refused
    assert log.written == len(batch) - refused + 5
    assert log.close(5.0) and log.depth == 0

    ids = [r.id for r in batch if r is not duplicate] + [prediction_id(i) for i in range(200, 205)]
    stored = registry.get_predictions(ids)
    assert set(stored) == set(ids) - ({prediction_id(104)} if postgres else set())
    assert stored[nul.id].text == f"poison {REPLACEMENT} byte {SECRET}"
    assert stored[surrogate.id].text == f"lone {REPLACEMENT} surrogate"
    assert len(stored[huge.id].text) == 1_000_000
    assert stored[rtl.id].text == rtl.text
    assert registry.get_predictions([good[0].id])[good[0].id].text == good[0].text  # nothing overwritten
    assert SECRET not in caplog.text  # logs name ids and errors, never texts
    assert duplicate.id in caplog.text


def test_rows_given_up_at_shutdown_are_counted() -> None:
    def down(_rows):  # type: ignore[no-untyped-def]
        raise ConnectionError("database unreachable")

    log = PredictionLog(down, capacity=100, batch_size=10, flush_interval_s=0.01, max_backoff_s=0.05)
    log.offer(prediction_rows(7))
    assert not log.close(0.3)
    assert log.dropped_by_reason[SHUTDOWN] == 7 and log.depth == 0 and log.written == 0


def test_database_errors_name_the_statement_not_the_values(registry: Registry) -> None:
    row = _with_text(prediction_rows(1)[0], SECRET)
    registry.add_predictions([row])
    with pytest.raises(ConflictError) as caught:
        registry.add_predictions([row])
    message = str(caught.value)
    assert "INSERT INTO predictions" in message and SECRET not in message
    assert SECRET not in repr(caught.value.__cause__)  # engines hide bound parameters too


def test_labels_with_poison_text_and_spaced_labels_are_stored_clean(registry: Registry) -> None:
    stored = registry.add_labels(
        [
            NewLabel(label="  positive ", text="nul \x00 here", domain="d\x00", model_name="sentiment"),
            NewLabel(label="très bien", text="lone \udfff low surrogate", model_name="sentiment"),
        ],
        allowed_labels=("positive", "très bien"),
    )
    assert [s.label for s in stored] == ["positive", "très bien"]
    assert stored[0].text == f"nul {REPLACEMENT} here" and stored[0].domain == f"d{REPLACEMENT}"
    assert stored[1].text == f"lone {REPLACEMENT} low surrogate"
    assert {lab.text for lab in registry.list_labels("sentiment")} == {stored[0].text, stored[1].text}


def test_label_case_is_kept_and_a_near_miss_is_named(registry: Registry) -> None:
    with pytest.raises(InvalidInputError, match=r"did you mean 'positive' for 'Positive'\?.*case-sensitive"):
        registry.add_labels(
            [NewLabel(label="Positive", text="fine", model_name="sentiment")],
            allowed_labels=("positive", "negative"),
        )
    with pytest.raises(InvalidInputError, match=r"item 0: label has 201 characters; it must have 1 to 200"):
        registry.add_labels([NewLabel(label="x" * 201, text="fine", model_name="sentiment")])
    assert registry.list_labels("sentiment") == []  # nothing of a refused batch is written


def test_every_text_column_stores_what_any_writer_sends(registry: Registry) -> None:
    """Not only the log and labels: reasons, descriptions, reviewers' words go through the same rule."""
    registry.ensure_model("m", description="a model \x00 for \ud800 mail")
    assert registry.get_model("m").description == f"a model {REPLACEMENT} for {REPLACEMENT} mail"
