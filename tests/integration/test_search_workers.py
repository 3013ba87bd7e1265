"""One recipe search in two processes: the job and a `python -m retrain search-worker` share the Optuna
study through PostgreSQL, in a schema of its own (never the registry's: Optuna brings its own
alembic_version table). Real fine-tuning of MiniLM cut to one layer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import inspect, text

from contracts import TrainConfig
from contracts.search import SearchConfig, SearchSpace
from registry.db import make_engine, upgrade
from retrain.search import search
from retrain.train import default_base_model_path
from tests.textgen import topic_rows

# slow (about 35 s): `python -m bench.search --workers URL` measures the same two processes
pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def study_url(pg_server_url: str) -> Iterator[str]:
    """A schema of its own in the session's PostgreSQL database, dropped afterwards."""
    schema = f"search_{uuid.uuid4().hex[:8]}"
    yield f"{pg_server_url}?options=-csearch_path%3D{schema}"
    engine = make_engine(pg_server_url)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def test_two_worker_processes_share_one_study_beside_the_registry(study_url: str, pg_server_url: str, tmp_path: Path) -> None:
    engine = make_engine(pg_server_url)
    upgrade(engine)  # the registry's own tables and alembic_version, in the default schema
    before = inspect(engine).get_table_names()

    train = pd.DataFrame(topic_rows(300, seed=11))[["text", "label"]]
    base = TrainConfig(num_hidden_layers=1, max_length=32, epochs=2, learning_rate=5e-4, seed=3)
    space = SearchSpace(learning_rate=(1e-4, 1e-3), epochs=(1, 2), freeze_layers=(0,), augment_strength=(0.0,))
    result = search(
        train,
        sorted(set(train["label"])),
        base,
        base_path=default_base_model_path(),
        config=SearchConfig(max_trials=6, space=space, min_budget_s=600),
        work_dir=tmp_path / "work",
        study_name="two-workers",
        storage=study_url,
        workers=2,
    )
    import optuna

    study = optuna.load_study(study_name="two-workers", storage=result_storage(study_url))
    processes = {t.user_attrs.get("process") for t in study.trials if "state" in t.user_attrs}
    assert len(processes) == 2, processes  # both processes trained trials
    assert len(result.trials) == 6 and result.searched
    assert result.trained.best_val_macro_f1 is not None
    assert inspect(engine).get_table_names() == before  # the registry's schema: untouched
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    engine.dispose()


def result_storage(url: str) -> str:
    from registry.db import normalize_url

    return normalize_url(url)
