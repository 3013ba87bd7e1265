"""Several training processes for one run: ``python -m retrain run`` under ``torchrun``.

``torchrun`` starts the same command once per process with the standard environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); :func:`from_env` reads it, and a
single process (no such environment, or ``WORLD_SIZE=1``) takes the usual path unchanged.

Rank 0 alone owns the run: it claims it, keeps the heartbeat, assembles the data, evaluates, gates,
registers and decides. Before training it sends the other ranks one message over the process group
(:class:`Channel`): the :class:`TrainPlan` (the very training rows, label set, resolved training
config, champion artifact and checkpoint folder it trains with), or a :class:`Stop` when the run ends
without training (skipped, failed, not claimable). Every rank then makes the same ``fine_tune`` call
and the HF Trainer trains with DDP over the same process group (gloo on CPU; NCCL for the tensors on
GPU, gloo still carrying these messages). The other ranks exit 0 afterwards without touching a record.

A rank's death surfaces on the others as a transport error (:func:`is_peer_failure`): rank 0 then
leaves the run ``running`` with no more heartbeats, exactly as if its own process had been killed, so
the dispatcher's (or the reaper's) retry path queues it again and the retry resumes from the
checkpoints rank 0 wrote (the checkpoint folder must be shared by all ranks: one node, or a shared
file system).

Only the standard library is imported here; ``torch`` when a function needs it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from contracts.train import TrainConfig
from registry.entities import ArtifactRef
from registry.errors import DriftlineError, ErrorCode, InvalidInputError

logger = logging.getLogger(__name__)

# What gloo, NCCL and the c10d store say when another rank is gone (its process died or hung).
PEER_FAILURE_MARKERS = (
    "connection closed by peer",
    "connection reset by peer",
    "broken pipe",
    "remote worker crashing",
    "nccl communicator was aborted",
    "nccl error",
    "timed out waiting",
)


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in the job: its global rank, the number of processes, its rank on its node."""

    rank: int
    world_size: int
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env(environ: Mapping[str, str] | None = None) -> Ranks | None:
    """The job torchrun describes in ``environ`` (``os.environ``); None for a single process."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return None
    try:
        world_size = int(env["WORLD_SIZE"])
        rank = int(env.get("RANK", "0"))
        local_rank = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise InvalidInputError(f"torchrun environment is not valid: {exc}") from exc
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise InvalidInputError(
            f"torchrun environment is not valid: RANK={rank}, WORLD_SIZE={world_size}, LOCAL_RANK={local_rank}"
        )
    if world_size == 1:
        return None
    return Ranks(rank=rank, world_size=world_size, local_rank=local_rank)


def backend() -> str:
    """The process group's backend: gloo on CPU; on GPU NCCL for CUDA tensors (DDP's gradients) and gloo
    for CPU objects (the plan, resume point and barriers of :func:`share`)."""
    import torch

    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def init(ranks: Ranks) -> None:
    """Join the process group torchrun set up (``env://``); the Trainer then uses the same group."""
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(ranks.local_rank)
    dist.init_process_group(backend=backend())
    logger.info("rank %d of %d joined the process group (%s)", ranks.rank, ranks.world_size, backend())


def close() -> None:
    """Leave the process group (a no-op when there is none)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def share(value: Any, ranks: Ranks) -> Any:
    """Rank 0's ``value`` on every rank (pickled through the process group); the others pass anything."""
    import torch.distributed as dist

    box = [value if ranks.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ranks: Ranks) -> None:
    import torch.distributed as dist

    dist.barrier()


def is_peer_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says another rank is gone rather than this rank failing on its own."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_dist_error(current):
            return True
        if isinstance(current, RuntimeError):
            message = str(current).lower()
            if any(marker in message for marker in PEER_FAILURE_MARKERS):
                return True
        current = current.__cause__ or current.__context__
    return False


def _is_dist_error(exc: BaseException) -> bool:
    try:
        from torch.distributed import DistError
    except ImportError:  # torch without distributed support
        return False
    return isinstance(exc, DistError)


class PeerLost(DriftlineError):
    """Another training process of the run died: the run is left ``running`` for its retry."""

    code = ErrorCode.UNAVAILABLE


@dataclass(frozen=True)
class TrainPlan:
    """What every rank trains with: rank 0's rows and config, so that all ranks make the same call."""

    run_id: int
    train: pd.DataFrame
    labels: list[str]
    cfg: TrainConfig  # max_length resolved to an int
    champion: ArtifactRef  # the weights training starts from; each rank fetches it
    checkpoint_dir: Path | None  # rank 0's: where it checkpoints and every rank resumes from


@dataclass(frozen=True)
class Stop:
    """The run ended before training (skipped, failed, not claimable): the other ranks exit."""

    reason: str


class Channel:
    """Rank 0's one message to the other ranks before training: the plan, or why there is none.

    In a single process (``ranks`` None) sending does nothing. Rank 0 sends exactly once: the first
    :meth:`send` goes out, later ones are ignored, and :meth:`close` sends a :class:`Stop` if nothing
    went out yet, so that the other ranks never wait for a message that does not come.
    """

    def __init__(self, ranks: Ranks | None) -> None:
        if ranks is not None and not ranks.is_main:
            raise ValueError("only rank 0 sends the plan")
        self.ranks = ranks
        self.sent: TrainPlan | Stop | None = None

    @property
    def distributed(self) -> bool:
        return self.ranks is not None

    def send(self, message: TrainPlan | Stop) -> None:
        if self.ranks is None or self.sent is not None:
            return
        self.sent = message
        share(message, self.ranks)

    def close(self, reason: str) -> None:
        """Send ``Stop(reason)`` when nothing was sent; never raises (the run's own error matters more)."""
        if self.ranks is None or self.sent is not None:
            return
        try:
            self.send(Stop(reason))
        except Exception as exc:  # noqa: BLE001 - a rank already gone cannot be told anything
            logger.warning("could not tell the other ranks that the run ended: %s", exc)


def receive(ranks: Ranks) -> TrainPlan | Stop:
    """What rank 0 sent (ranks other than 0)."""
    message = share(None, ranks)
    if not isinstance(message, TrainPlan | Stop):
        raise InvalidInputError(f"rank {ranks.rank} received {type(message).__name__}, not a training plan")
    return message
