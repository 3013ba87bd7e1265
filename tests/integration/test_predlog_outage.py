"""The prediction-log writer against a real PostgreSQL database that goes away and comes back."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from sqlalchemy import text

from registry.db import make_engine, upgrade
from registry.store import Registry
from service.predlog import PredictionLog
from tests.conftest import PG_ENV
from tests.fakes import prediction_rows

pytestmark = pytest.mark.postgres


def test_writer_rides_out_a_database_outage() -> None:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set")
    admin = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    name = f"driftline_outage_{uuid.uuid4().hex[:8]}"

    def create() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine = make_engine(admin.url.set(database=name).render_as_string(hide_password=False))
        upgrade(engine)
        engine.dispose()

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    create()
    store = Registry(make_engine(admin.url.set(database=name).render_as_string(hide_password=False)))
    log = PredictionLog(
        store.add_predictions, capacity=1000, batch_size=20, flush_interval_s=0.05, max_backoff_s=0.2
    )
    try:
        log.offer(prediction_rows(30, 0))
        assert log.flush(10)
        assert store.count_predictions() == 30

        drop()  # the database is gone: writes fail, rows wait
        started = time.perf_counter()
        assert log.offer(prediction_rows(25, 30)) == 25
        assert time.perf_counter() - started < 0.1
        deadline = time.monotonic() + 10
        while log.write_errors == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.write_errors >= 1
        assert log.depth == 25 and log.dropped == 0

        create()  # back (empty): the waiting rows are written, none lost
        assert log.flush(20)
        assert store.count_predictions() == 25
        assert log.depth == 0
    finally:
        log.close(2.0)
        store.close()
        drop()
        admin.dispose()
