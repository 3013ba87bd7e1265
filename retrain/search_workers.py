"""More processes for one recipe search: each a worker that trains trials of the same Optuna study.

A search run by one job can take a second (third, ...) process when its study lives in a storage they all
reach (``DRIFTLINE_SEARCH_STORAGE``: PostgreSQL with a schema of its own). The job writes a
:class:`WorkerPlan` (its training rows as Parquet, its base model folder, its training and search
configs) into its working folder and starts ``python -m retrain search-worker --plan FILE`` for each extra
worker; on Kubernetes the same command runs in pods that mount that folder. Each worker asks the study
for trials until the study holds ``max_trials`` or the budget (measured from the job's start, sized by
its warm start, both read from the study) runs out. The job itself trains trials too, waits for the
workers, and takes the best trial of all: when another worker trained it, the job trains that recipe
once more (a model is not shipped between processes). Where the study lives is decided here too
(:func:`study_storage`): a SQLite file in the job's folder, or the shared URL with its schema created.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

PLAN_FILE = "search-worker-plan.json"
ROWS_FILE = "search-worker-rows.parquet"


@dataclass(frozen=True)
class WorkerPlan:
    """Everything a worker needs to train trials of the job's study."""

    storage: str
    study_name: str
    rows: str  # Parquet file of the training rows (text, label)
    labels: list[str]
    base: dict[str, Any]  # the job's TrainConfig
    base_path: str  # the model folder trials fine-tune from
    search: dict[str, Any]  # the job's SearchConfig, its space as the job narrowed it

    def write(self, folder: Path) -> Path:
        path = folder / PLAN_FILE
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def read(cls, path: Path) -> WorkerPlan:
        return cls(**json.loads(Path(path).read_text()))

    def rows_frame(self) -> pd.DataFrame:
        return pd.read_parquet(self.rows)


def plan_for(
    folder: Path,
    *,
    storage: str,
    study_name: str,
    train: pd.DataFrame,
    labels: list[str],
    base: dict[str, Any],
    base_path: Path,
    search: dict[str, Any],
) -> Path:
    """Write the rows and the plan into ``folder``; the plan's path."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = folder / ROWS_FILE
    train[["text", "label"]].to_parquet(rows, index=False)
    plan = WorkerPlan(storage, study_name, str(rows), labels, base, str(base_path), search)
    return plan.write(folder)


def start_workers(plan: Path, n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` worker processes on this machine, each ``python -m retrain search-worker --plan PLAN``."""
    command = [sys.executable, "-m", "retrain", "search-worker", "--plan", str(plan)]
    logger.info("starting %d more search worker(s): %s", n, " ".join(command))
    return [subprocess.Popen(command) for _ in range(n)]


def wait_for(workers: list[subprocess.Popen[bytes]], timeout_s: float | None) -> list[int | None]:
    """Wait for the workers (each stops by itself at the study's trial count or budget); one still
    running after ``timeout_s`` (None: no limit) is terminated. Their exit codes (None: terminated)."""
    deadline = time.monotonic() + (timeout_s if timeout_s is not None else 7 * 24 * 3600.0)
    codes: list[int | None] = []
    for worker in workers:
        try:
            codes.append(worker.wait(timeout=max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            worker.terminate()
            worker.wait(timeout=30)
            codes.append(None)
    if any(code != 0 for code in codes):
        logger.warning("search workers ended with %s", codes)
    return codes


def study_storage(shared: str | None, work_dir: Path) -> tuple[str, str]:
    """The Optuna storage URL and how to name it in records (a shared URL without its credentials).
    A PostgreSQL URL gets the psycopg 3 driver (as the registry's does) and the schema its
    ``options=-csearch_path=...`` names is created when missing."""
    if shared:
        from sqlalchemy.engine import make_url

        from registry.db import normalize_url

        url = normalize_url(shared)
        _ensure_schema(url)
        return url, make_url(url).render_as_string(hide_password=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / "search.db"
    return f"sqlite:///{path}", f"sqlite file {path.name} in the job's working folder"


def _ensure_schema(url: str) -> None:
    """``CREATE SCHEMA IF NOT EXISTS`` the first schema of a PostgreSQL URL's ``search_path`` option."""
    import re

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    found = re.search(r"search_path=([A-Za-z_][A-Za-z0-9_]*)", str(parsed.query.get("options", "")))
    if not parsed.drivername.startswith("postgresql") or found is None:
        return
    engine = create_engine(parsed.difference_update_query(["options"]))
    try:
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{found.group(1)}"'))
    finally:
        engine.dispose()
