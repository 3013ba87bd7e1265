"""The work the scheduler does: drift checks (and the retraining runs their decisions queue), the
check requests the control API records, retraining runs from queued to finished, and the leases that
keep one leader per job."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from registry import entities as e
from registry.errors import ConflictError, InvalidInputError, NotFoundError
from registry.orm import AliasRow, CheckRequestRow, DriftCheckRow, LeaseRow, RegisteredModelRow, RetrainRunRow
from registry.store.base import StoreBase, check_name, model_row, retry_on_conflict

logger = logging.getLogger(__name__)

ACTIVE_RUN_STATUSES = (e.RunStatus.QUEUED.value, e.RunStatus.RUNNING.value)


class Jobs(StoreBase):
    """Drift checks, check requests, retraining runs and leases."""

    # --- drift checks -----------------------------------------------------------------------

    def add_drift_check(
        self,
        check: e.NewDriftCheck,
        *,
        queue_run: dict[str, Any] | None = None,
        trigger: e.RunTrigger = e.RunTrigger.DRIFT,
    ) -> tuple[e.DriftCheck, e.RetrainRun | None]:
        """Store a drift check and, in the same transaction, the run its decision queued (if any).

        ``queue_run`` holds the run's ``config`` and ``trigger`` what queued it (the drift rule or the
        label-growth rule); the run refers to the check. A run already queued or
        running for the model, or a champion other than the checked ``model_version`` (a promotion
        landed while the check ran), makes the whole write fail with :class:`ConflictError`. Queueing
        locks the model's row first (SQLite: the write lock ``BEGIN IMMEDIATE`` takes), so two monitors
        that decide at once serialize here and the second sees the first one's run.
        """
        with self._tx() as s:
            if queue_run is not None:
                _refuse_moved_champion(s, check)
            row = DriftCheckRow(
                model_name=check.model_name,
                model_version=check.model_version,
                window_start=check.window_start,
                window_end=check.window_end,
                reference=check.reference,
                n_reference=check.n_reference,
                n_current=check.n_current,
                scores=check.scores,
                drifted=check.drifted,
                decision=check.decision,
                reason=check.reason,
                report_uri=check.report_uri,
                created_at=self._clock(),
            )
            s.add(row)
            s.flush()
            run = _queue_check_run(s, row, queue_run, trigger) if queue_run is not None else None
            return row.to_entity(), run.to_entity() if run is not None else None

    def get_drift_check(self, check_id: int) -> e.DriftCheck:
        with self._tx() as s:
            row = s.get(DriftCheckRow, check_id)
            if row is None:
                raise NotFoundError(f"drift check {check_id} does not exist")
            return row.to_entity()

    def list_drift_checks(self, model_name: str | None = None, *, limit: int = 100) -> list[e.DriftCheck]:
        with self._tx() as s:
            query = select(DriftCheckRow).order_by(DriftCheckRow.id.desc()).limit(limit)
            if model_name is not None:
                query = query.where(DriftCheckRow.model_name == model_name)
            return [r.to_entity() for r in s.scalars(query)]

    # --- check requests ---------------------------------------------------------------------

    def request_check(
        self, model_name: str, *, requested_by: str, max_pending: int | None = None
    ) -> e.CheckRequest:
        """Record that someone wants a drift check of ``model_name`` now; the scheduler's leader runs it.

        The service cannot run checks itself (it never imports ``monitor``); this row is how it asks.
        With ``max_pending``, a model that already has that many pending requests refuses one more
        (:class:`ConflictError`); its row is locked first, so two requests at once count each other.
        """
        with self._tx() as s:
            model_row(s, model_name, lock=max_pending is not None)
            if max_pending is not None:
                pending = s.scalars(
                    select(CheckRequestRow.id)
                    .where(
                        CheckRequestRow.model_name == model_name,
                        CheckRequestRow.status == e.CheckRequestStatus.PENDING.value,
                    )
                    .order_by(CheckRequestRow.id)
                )
                _check_pending(model_name, "drift-check requests pending", list(pending), max_pending)
            row = CheckRequestRow(
                model_name=model_name,
                requested_by=requested_by,
                status=e.CheckRequestStatus.PENDING.value,
                created_at=self._clock(),
            )
            s.add(row)
            s.flush()
            return row.to_entity()

    def get_check_request(self, request_id: int) -> e.CheckRequest:
        with self._tx() as s:
            row = s.get(CheckRequestRow, request_id)
            if row is None:
                raise NotFoundError(f"check request {request_id} does not exist")
            return row.to_entity()

    def list_check_requests(
        self, status: e.CheckRequestStatus | None = None, *, limit: int = 100
    ) -> list[e.CheckRequest]:
        """Newest first, or oldest first for ``pending`` (the order the scheduler handles them in)."""
        with self._tx() as s:
            order = (
                CheckRequestRow.id if status is e.CheckRequestStatus.PENDING else CheckRequestRow.id.desc()
            )
            query = select(CheckRequestRow).order_by(order).limit(limit)
            if status is not None:
                query = query.where(CheckRequestRow.status == status.value)
            return [r.to_entity() for r in s.scalars(query)]

    def next_check_request(self) -> e.CheckRequest | None:
        """The oldest pending check request, or ``None``."""
        pending = self.list_check_requests(e.CheckRequestStatus.PENDING, limit=1)
        return pending[0] if pending else None

    def finish_check_request(
        self, request_id: int, *, drift_check_id: int | None = None, error: str | None = None
    ) -> e.CheckRequest:
        """Mark a request done (with the check it produced) or failed (with ``error``)."""
        if (drift_check_id is None) == (error is None):
            raise InvalidInputError(
                "give either drift_check_id (done) or error (failed), not both or neither"
            )
        with self._tx() as s:
            row = s.scalar(select(CheckRequestRow).where(CheckRequestRow.id == request_id).with_for_update())
            if row is None:
                raise NotFoundError(f"check request {request_id} does not exist")
            done = drift_check_id is not None
            row.status = (e.CheckRequestStatus.DONE if done else e.CheckRequestStatus.FAILED).value
            row.drift_check_id = drift_check_id
            row.error = error[:2000] if error is not None else None
            row.handled_at = self._clock()
            s.flush()
            return row.to_entity()

    # --- retrain runs -----------------------------------------------------------------------

    def create_run(
        self,
        model_name: str,
        *,
        trigger: e.RunTrigger,
        config: dict[str, Any],
        status: e.RunStatus = e.RunStatus.QUEUED,
        drift_check_id: int | None = None,
        max_pending: int | None = None,
    ) -> e.RetrainRun:
        """Record a run. With ``max_pending``, a model that already has that many runs of this
        ``trigger`` queued or running refuses one more (:class:`ConflictError`, :class:`NotFoundError`
        for an unknown model); its row is locked first, so two requests at once count each other."""
        now = self._clock()
        with self._tx() as s:
            if max_pending is not None:
                model_row(s, model_name, lock=True)
                pending = s.scalars(
                    select(RetrainRunRow.id)
                    .where(
                        RetrainRunRow.model_name == model_name,
                        RetrainRunRow.trigger == trigger.value,
                        RetrainRunRow.status.in_(ACTIVE_RUN_STATUSES),
                    )
                    .order_by(RetrainRunRow.id)
                )
                _check_pending(
                    model_name, f"{trigger.value} runs queued or running", list(pending), max_pending
                )
            running = status == e.RunStatus.RUNNING
            row = RetrainRunRow(
                model_name=model_name,
                trigger=trigger.value,
                status=status.value,
                attempts=1 if running else 0,
                config=config,
                drift_check_id=drift_check_id,
                created_at=now,
                started_at=now if running else None,
                heartbeat_at=now if running else None,
            )
            s.add(row)
            s.flush()
            return row.to_entity()

    def get_run(self, run_id: int) -> e.RetrainRun:
        with self._tx() as s:
            return _run_row(s, run_id).to_entity()

    def list_runs(self, model_name: str | None = None, *, limit: int = 100) -> list[e.RetrainRun]:
        with self._tx() as s:
            query = select(RetrainRunRow).order_by(RetrainRunRow.id.desc()).limit(limit)
            if model_name is not None:
                query = query.where(RetrainRunRow.model_name == model_name)
            return [r.to_entity() for r in s.scalars(query)]

    def finish_run(
        self,
        run_id: int,
        status: e.RunStatus,
        *,
        error: str | None = None,
        data_snapshot_sha256: str | None = None,
    ) -> e.RetrainRun:
        if not status.finished:
            raise InvalidInputError(f"run status '{status}' is not a final status")
        with self._tx() as s:
            row = _run_row(s, run_id)
            row.status = status.value
            row.error = error
            row.finished_at = self._clock()
            if data_snapshot_sha256 is not None:
                row.data_snapshot_sha256 = data_snapshot_sha256
            s.flush()
            return row.to_entity()

    def next_queued_run(self, model_name: str | None = None) -> e.RetrainRun | None:
        """The oldest queued run that may start now (to dispatch), or ``None``.

        A retry waiting out its back-off (``not_before`` in the future) is skipped, so a run that keeps
        dying does not hog the dispatcher in a tight loop.
        """
        with self._tx() as s:
            query = (
                select(RetrainRunRow)
                .where(
                    RetrainRunRow.status == e.RunStatus.QUEUED.value,
                    (RetrainRunRow.not_before.is_(None)) | (RetrainRunRow.not_before <= self._clock()),
                )
                .order_by(RetrainRunRow.id)
                .limit(1)
            )
            if model_name is not None:
                query = query.where(RetrainRunRow.model_name == model_name)
            row = s.scalar(query)
            return row.to_entity() if row is not None else None

    def claim_run(self, run_id: int) -> e.RetrainRun:
        """Move a queued run to running (attempts + 1, heartbeat now); refuses any other status."""
        with self._tx() as s:
            row = _run_row(s, run_id, lock=True)
            if row.status != e.RunStatus.QUEUED.value:
                raise ConflictError(f"retrain run {run_id} is '{row.status}', not queued")
            now = self._clock()
            row.status = e.RunStatus.RUNNING.value
            row.attempts += 1
            row.started_at = now
            row.heartbeat_at = now
            row.not_before = None  # the back-off of the previous attempt is over
            s.flush()
            return row.to_entity()

    def heartbeat(self, run_id: int) -> None:
        with self._tx() as s:
            s.execute(
                update(RetrainRunRow).where(RetrainRunRow.id == run_id).values(heartbeat_at=self._clock())
            )

    def reap_runs(
        self, *, heartbeat_before: datetime, max_attempts: int = 1, backoff_s: float = 0.0
    ) -> list[e.RetrainRun]:
        """Retry or fail every running run whose last heartbeat is older than ``heartbeat_before``.

        Its process is gone (killed, out of memory, node lost) without recording an outcome: see
        :meth:`retry_or_fail_run`. Returns the runs as they are afterwards (queued again or failed).
        """
        with self._tx() as s:
            rows = list(
                s.scalars(
                    select(RetrainRunRow)
                    .where(
                        RetrainRunRow.status == e.RunStatus.RUNNING.value,
                        RetrainRunRow.heartbeat_at < heartbeat_before,
                    )
                    .with_for_update()
                )
            )
            for row in rows:
                last = row.heartbeat_at.isoformat() if row.heartbeat_at else "never"
                self._retry_or_fail(row, f"heartbeat stopped (last at {last})", max_attempts, backoff_s)
            s.flush()
            return [row.to_entity() for row in rows]

    def retry_or_fail_run(
        self, run_id: int, reason: str, *, max_attempts: int, backoff_s: float
    ) -> e.RetrainRun | None:
        """Put a run whose process died back in the queue, or fail it after ``max_attempts`` attempts.

        Only a ``running`` run is touched (``None`` otherwise): a run that ended through a Python
        exception was already marked failed by the run itself and stays failed, since running the
        same code on the same data again would fail the same way. A process that vanished (a signal,
        the OOM killer, a lost node) may well succeed the next time; the retry keeps the run id, so
        it resumes from the checkpoints the earlier attempt left in the cache dir.
        """
        with self._tx() as s:
            row = _run_row(s, run_id, lock=True)
            if row.status != e.RunStatus.RUNNING.value:
                return None
            self._retry_or_fail(row, reason, max_attempts, backoff_s)
            s.flush()
            return row.to_entity()

    def _retry_or_fail(self, row: RetrainRunRow, reason: str, max_attempts: int, backoff_s: float) -> None:
        """Back-off doubles per attempt: ``backoff_s * 2 ** (attempts - 1)`` after attempt ``attempts``."""
        now = self._clock()
        if row.attempts < max_attempts:
            row.status = e.RunStatus.QUEUED.value
            row.not_before = now + timedelta(seconds=backoff_s * 2 ** max(row.attempts - 1, 0))
            row.error = f"attempt {row.attempts}: {reason}; retry after {row.not_before.isoformat()}"
            logger.warning("run %s: %s", row.id, row.error)
            return
        row.status = e.RunStatus.FAILED.value
        row.finished_at = now
        row.not_before = None
        row.error = f"{reason}; gave up after {row.attempts} attempt{'s' if row.attempts != 1 else ''}"
        logger.warning("run %s failed: %s", row.id, row.error)

    # --- leases -----------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, ttl: timedelta) -> e.Lease | None:
        """Take the lease ``name`` for ``ttl`` if it is free, expired, or already ``holder``'s.

        Returns the lease on success and ``None`` when someone else holds it.
        """
        check_name("lease name", name)

        def take() -> e.Lease | None:
            with self._tx() as s:
                now = self._clock()
                row = s.scalar(select(LeaseRow).where(LeaseRow.name == name).with_for_update())
                if row is None:
                    row = LeaseRow(name=name, holder=holder, acquired_at=now, expires_at=now + ttl)
                    s.add(row)
                elif row.holder == holder or row.expires_at <= now:
                    if row.holder != holder:
                        logger.info("lease %s: expired holder %s replaced by %s", name, row.holder, holder)
                        row.acquired_at = now
                    row.holder = holder
                    row.expires_at = now + ttl
                else:
                    return None
                s.flush()
                return row.to_entity()

        # two first-time acquirers: one insert wins, the other finds its lease next
        return retry_on_conflict(take, what=f"lease {name}")

    def renew_lease(self, name: str, holder: str, ttl: timedelta) -> e.Lease | None:
        """Extend ``holder``'s unexpired lease; ``None`` if it expired or belongs to someone else."""
        with self._tx() as s:
            now = self._clock()
            row = s.scalar(select(LeaseRow).where(LeaseRow.name == name).with_for_update())
            if row is None or row.holder != holder or row.expires_at <= now:
                return None
            row.expires_at = now + ttl
            s.flush()
            return row.to_entity()

    def release_lease(self, name: str, holder: str) -> bool:
        with self._tx() as s:
            # SQLAlchemy types Session.execute as Result; a DELETE without RETURNING gives a CursorResult
            result = cast(
                CursorResult[Any],
                s.execute(delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder)),
            )
            return bool(result.rowcount)

    def get_lease(self, name: str) -> e.Lease | None:
        with self._tx() as s:
            row = s.get(LeaseRow, name)
            return row.to_entity() if row is not None else None


def _refuse_moved_champion(s: Session, check: e.NewDriftCheck) -> None:
    """Lock the checked model's row, then refuse a check whose version is no longer the champion."""
    s.execute(
        select(RegisteredModelRow.name).where(RegisteredModelRow.name == check.model_name).with_for_update()
    )
    champion = s.get(AliasRow, (check.model_name, e.CHAMPION))
    if champion is not None and champion.version != check.model_version:
        raise ConflictError(
            f"the champion moved to v{champion.version} while v{check.model_version} was being checked"
        )


def _queue_check_run(
    s: Session, check: DriftCheckRow, config: dict[str, Any], trigger: e.RunTrigger
) -> RetrainRunRow:
    """Queue the run ``check`` decided on, unless one is already queued or running for its model."""
    active = s.scalar(
        select(RetrainRunRow.id)
        .where(RetrainRunRow.model_name == check.model_name, RetrainRunRow.status.in_(ACTIVE_RUN_STATUSES))
        .with_for_update()
        .limit(1)
    )
    if active is not None:
        raise ConflictError(f"model '{check.model_name}' already has run {active} queued or running")
    run = RetrainRunRow(
        model_name=check.model_name,
        trigger=trigger.value,
        status=e.RunStatus.QUEUED.value,
        attempts=0,
        config=config,
        drift_check_id=check.id,
        created_at=check.created_at,
    )
    s.add(run)
    s.flush()
    return run


def _check_pending(model_name: str, what: str, pending: list[int], limit: int) -> None:
    """Refuse one more of ``what`` when the ids in ``pending`` already reach ``limit``."""
    if len(pending) >= limit:
        raise ConflictError(
            f"model '{model_name}' already has {len(pending)} {what} (ids {', '.join(map(str, pending))}); "
            f"the limit is {limit} at once: wait until one is done",
            pending=len(pending),
            limit=limit,
        )


def _run_row(s: Session, run_id: int, *, lock: bool = False) -> RetrainRunRow:
    """The run's row; ``lock`` takes its row lock (``SELECT ... FOR UPDATE``) for a status change."""
    query = select(RetrainRunRow).where(RetrainRunRow.id == run_id)
    row = s.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFoundError(f"retrain run {run_id} does not exist")
    return row
