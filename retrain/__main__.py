"""``python -m retrain run --run-id N``: execute one queued retraining run (what the dispatcher starts).
``python -m retrain search-worker --plan FILE``: train trials of a job's recipe search in one more
process (:mod:`retrain.search_workers`).

Under ``torchrun`` (the standard ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_ADDR`` /
``MASTER_PORT`` environment, more than one process) every process joins one process group: rank 0
executes the run, the others train with it (:mod:`retrain.distributed`) and exit 0 without touching a
record. Without that environment, one process does everything, as before.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.offline import go_offline
from registry.artifacts import artifact_store
from registry.errors import DriftlineError
from registry.settings import Settings, get_settings
from registry.store import Registry
from retrain import distributed
from retrain.run import execute_run, follow_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m retrain")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute one queued retraining run")
    run.add_argument("--run-id", type=int, required=True)
    worker = sub.add_parser("search-worker", help="train trials of a recipe search's shared study")
    worker.add_argument("--plan", type=Path, required=True, help="the plan the job wrote (search-worker-plan.json)")
    args = parser.parse_args(argv)
    go_offline()
    if args.command == "search-worker":
        return _search_worker(args.plan)
    try:
        ranks = distributed.from_env()
    except DriftlineError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    where = f"[rank {ranks.rank}/{ranks.world_size}] " if ranks is not None else ""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s {where}%(name)s: %(message)s")
    settings = get_settings()
    if ranks is None:
        return _run(args.run_id, settings, None)
    distributed.init(ranks)
    try:
        if not ranks.is_main:
            follow_run(artifact_store(settings), ranks)
            return 0
        return _run(args.run_id, settings, ranks)
    finally:
        distributed.close()


def _run(run_id: int, settings: Settings, ranks: distributed.Ranks | None) -> int:
    assert settings.cache_dir is not None  # Settings fills it from home
    try:
        outcome = execute_run(
            run_id,
            Registry.open(settings),
            artifact_store(settings),
            work_dir=settings.cache_dir / "runs" / str(run_id),
            ranks=ranks,
        )
    except DriftlineError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(f"run {run_id}: {outcome.status.value}: {outcome.reason}")
    return 0


def _search_worker(plan: Path) -> int:
    from retrain.search import work
    from retrain.search_workers import WorkerPlan

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [search worker] %(name)s: %(message)s")
    trained = work(WorkerPlan.read(plan))
    print(f"search worker: {trained} trial(s) trained")
    return 0


if __name__ == "__main__":
    sys.exit(main())
