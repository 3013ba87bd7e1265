"""``python -m retrain run --run-id N``: execute one queued retraining run (what the dispatcher starts)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from registry.artifacts import artifact_store
from registry.errors import DriftlineError
from registry.settings import get_settings
from registry.store import Registry
from retrain.run import execute_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m retrain")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute one queued retraining run")
    run.add_argument("--run-id", type=int, required=True)
    args = parser.parse_args(argv)
    for key, value in {"HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
        os.environ.setdefault(key, value)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    try:
        outcome = execute_run(
            args.run_id,
            Registry.open(settings),
            artifact_store(settings),
            work_dir=settings.cache_dir / "runs" / str(args.run_id),
        )
    except DriftlineError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(f"run {args.run_id}: {outcome.status.value}: {outcome.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
