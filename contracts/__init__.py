"""The typed contracts between Driftline's processes: what crosses from the API, the CLI, the monitor or
a replay session into a retraining run (:class:`RunSpec`, with its training, assembly and gate parts).

It imports only ``registry`` (for its errors): every package that writes or reads a run may import it.
"""

from contracts.run import (
    RUN_TRAIN_DEFAULTS,
    AssemblyConfig,
    GateConfig,
    RunSpec,
    describe_errors,
    parse_run_config,
    run_train_config,
)
from contracts.train import TrainConfig

__all__ = [
    "RUN_TRAIN_DEFAULTS",
    "AssemblyConfig",
    "GateConfig",
    "RunSpec",
    "TrainConfig",
    "describe_errors",
    "parse_run_config",
    "run_train_config",
]
