"""The drift-check job on a real registry: a window served by a real 1-layer champion, its stored
reference profile, the trigger policy, and the run it queues (once)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftline.cli import main
from monitor.job import MonitorConfig, run_drift_check
from monitor.policy import PolicyConfig
from registry.artifacts import LocalArtifactStore
from registry.entities import RunStatus, RunTrigger
from registry.errors import InvalidInputError
from registry.settings import Settings
from registry.store import Registry
from tests.models import serve_and_label
from tests.textgen import topic_rows


def serve(home: Path, texts: list[str], *, wrong_labels: bool) -> None:
    """Serve and log texts; label each prediction right, or (``wrong_labels``) wrong."""
    serve_and_label(home, texts, lambda p: ("sports" if p != "sports" else "food") if wrong_labels else p)


def drifted_texts(n: int) -> list[str]:
    return [
        f"Quarterly earnings report number {i} shows the bond market and interest rates moving again, "
        f"said the central bank governor in a long statement to investors."
        for i in range(n)
    ]


def test_drift_persists_then_queues_exactly_one_run(served_home: Path) -> None:
    store = Registry.open(Settings(home=served_home))
    artifacts = LocalArtifactStore(Settings(home=served_home).artifact_root)
    # bootstrap was just now: no cooldown. The labels below are all wrong, so the realized drop would act
    # at once (tests/unit/test_policy.py); this test is about persistence and the retry rule of the drift
    # trigger, without the label-growth trigger.
    policy = PolicyConfig(
        persistence=2,
        min_labels_floor=50,
        cooldown=timedelta(0),
        realized_drop_skips_persistence=False,
        label_growth_share=0.0,
    )
    config = MonitorConfig(window_size=200, policy=policy)

    serve(served_home, [r["text"] for r in topic_rows(120, seed=99)], wrong_labels=False)
    quiet = run_drift_check(store, artifacts, "sentiment", config)
    assert not quiet.check.drifted and quiet.run is None and quiet.decision.reason == "no drift", (
        quiet.check.scores
    )

    serve(served_home, drifted_texts(200), wrong_labels=True)
    first = run_drift_check(store, artifacts, "sentiment", config)
    assert first.check.drifted and first.run is None
    assert "waiting for 2 consecutive checks" in first.check.reason
    assert first.check.scores["text_length_drift"]["drifted"]
    assert quiet.check.scores["window"] == {
        "rows": 120,
        "labeled": 120,
        "truncated": 0,
        "truncated_share": 0.0,
        "runtime": "fp32",
        "left_out": 0,
        "labeled_by_margin": 0,
    }
    assert first.check.scores["realized_accuracy_drop"]["drifted"]
    report = artifacts.root + "/reports/" + first.check.report_uri
    assert Path(report).stat().st_size > 100_000

    second = run_drift_check(store, artifacts, "sentiment", config)
    assert second.run is not None and second.check.decision == "retrain"
    assert second.run.trigger is RunTrigger.DRIFT and second.run.status is RunStatus.QUEUED
    assert second.run.drift_check_id == second.check.id
    assert second.check.reason.endswith("retrain queued")
    # every label is wrong: the realized drop is so large that the power calculation asks for fewer
    # labels than the floor, and the run is told that floor (not its own default, 200)
    assert "a decisive gate on a " in second.check.reason and "needs 50 (the floor; " in second.check.reason
    assert second.check.scores["policy"]["labels_needed"] == 50
    assert second.run.config["assembly"] == {"min_new_labels": 50}

    third = run_drift_check(store, artifacts, "sentiment", config)
    assert third.run is None and "already queued or running" in third.check.reason
    assert [r.trigger for r in store.list_runs("sentiment") if r.status is RunStatus.QUEUED] == [
        RunTrigger.DRIFT
    ]

    # The gate refuses that run's challenger: the champion stays, and a retry waits until the labels
    # since the champion have doubled (the 120 quiet + 200 drifted rows the run had: 640), though the
    # power calculation alone would queue again at once.
    store.claim_run(second.run.id)
    store.finish_run(second.run.id, RunStatus.SUCCEEDED)
    fourth = run_drift_check(store, artifacts, "sentiment", config)
    assert fourth.run is None and "320 new labels" in fourth.check.reason
    assert (
        "the last run on this champion had 320 and did not replace it: a retry waits for 2x that, and 50 "
        "more at least (640): fewer than 640 new labels" in fourth.check.reason
    )
    serve(served_home, drifted_texts(100), wrong_labels=True)
    fifth = run_drift_check(store, artifacts, "sentiment", config)
    assert fifth.run is None and "fewer than 640 new labels" in fifth.check.reason
    serve(served_home, drifted_texts(220), wrong_labels=True)
    sixth = run_drift_check(store, artifacts, "sentiment", config)
    assert sixth.run is not None and "640 new labels" in sixth.check.reason


def test_cli_check_prints_scores_and_refuses_a_thin_window(served_home: Path) -> None:
    env = {"DRIFTLINE_HOME": str(served_home)}
    thin = CliRunner().invoke(main, ["check"], env=env)
    assert thin.exit_code == 2 and "needs at least 50" in thin.stderr
    serve(served_home, [r["text"] for r in topic_rows(80, seed=5)], wrong_labels=False)
    out = CliRunner().invoke(main, ["check", "--json"], env=env)
    assert out.exit_code == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["check"]["n_current"] == 80 and body["check"]["decision"] == "none"
    assert {"prediction_drift", "text_length_drift", "embedding_drift", "estimated_accuracy_drop"} <= set(
        body["check"]["scores"]
    )
    estimates = body["check"]["scores"]["accuracy_estimates"]
    for method in ("expected_accuracy", "atc"):  # undrifted rows: both near the held-out accuracy
        e = estimates[method]
        assert e["rows"] == 80 and 0.0 <= e["low"] <= e["value"] <= e["high"] <= 1.0, estimates
    assert isinstance(estimates["disagree"], bool) and 0 < estimates["atc"]["threshold"] < 1
    table = CliRunner().invoke(main, ["check"], env=env)
    assert "decision: none" in table.stdout and "embedding_drift" in table.stdout
    assert "accuracy without labels: expected 0." in table.stdout and "ATC 0." in table.stdout


def test_window_needs_enough_rows(served_home: Path) -> None:
    store = Registry.open(Settings(home=served_home))
    with pytest.raises(InvalidInputError, match="needs at least 50"):
        run_drift_check(store, LocalArtifactStore(Settings(home=served_home).artifact_root), "sentiment")


def test_check_counts_the_texts_the_model_read_in_part(served_home: Path) -> None:
    store = Registry.open(Settings(home=served_home))
    artifacts = LocalArtifactStore(Settings(home=served_home).artifact_root)
    short = [r["text"] for r in topic_rows(40, seed=7)]
    long = [" ".join(short[(i + k) % 40] for k in range(8)) for i in range(0, 40, 2)]  # over 32 tokens
    serve(served_home, short + long, wrong_labels=False)
    check = run_drift_check(store, artifacts, "sentiment", MonitorConfig(window_size=100)).check
    assert check.scores["window"] == {
        "rows": 60,
        "labeled": 60,
        "truncated": 20,
        "truncated_share": 20 / 60,
        "runtime": "fp32",
        "left_out": 0,
        "labeled_by_margin": 0,
    }


def test_a_window_served_on_int8_is_compared_with_the_int8_reference(served_home: Path) -> None:
    """The int8 graph's embeddings are its own: against the fp32 reference the same undrifted window
    looks drifted; against the int8 profile kept with the graph it does not."""
    import numpy as np
    import pandas as pd

    from monitor.signals import embedding_drift
    from runtime.modelio import REFERENCE_PROFILE

    settings = Settings(home=served_home)
    store = Registry.open(settings)
    artifacts = LocalArtifactStore(settings.artifact_root)
    serve_and_label(served_home, [r["text"] for r in topic_rows(120, seed=99)], lambda p: p, int8=True)
    result = run_drift_check(store, artifacts, "sentiment", MonitorConfig(window_size=200))
    check = result.check
    assert "reference.int8.parquet" in check.reference
    assert check.scores["window"]["runtime"] == "int8" and check.scores["window"]["left_out"] == 0
    assert not check.drifted and not check.scores["embedding_drift"]["drifted"], check.scores

    window = np.stack(
        [np.frombuffer(p.embedding, dtype=np.float16) for p, _ in store.window("sentiment", 1, limit=200)]
    )
    fp32 = pd.read_parquet(artifacts.fetch(store.get_version("sentiment", 1).artifact) / REFERENCE_PROFILE)
    assert embedding_drift(np.array(fp32["embedding"].tolist()), window).drifted

    # the fp32 rows that follow are the larger part of the next window: it is compared with fp32's profile
    serve(served_home, [r["text"] for r in topic_rows(150, seed=7)], wrong_labels=False)
    mixed = run_drift_check(store, artifacts, "sentiment", MonitorConfig(window_size=200)).check
    assert mixed.scores["window"]["runtime"] == "fp32" and mixed.scores["window"]["left_out"] == 50
    assert mixed.reference.endswith(f"/{REFERENCE_PROFILE} (60 rows)") and mixed.n_current == 150


def test_labels_the_queue_asked_for_by_margin_are_left_out_of_the_realized_accuracy(
    served_home: Path,
) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import insert, select

    from registry.orm import LabelRequestRow, PredictionRow

    store = Registry.open(Settings(home=served_home))
    artifacts = LocalArtifactStore(Settings(home=served_home).artifact_root)
    config = MonitorConfig(window_size=200)
    serve(served_home, [r["text"] for r in topic_rows(80, seed=98)], wrong_labels=True)
    measured = run_drift_check(store, artifacts, "sentiment", config)
    assert measured.check.scores["realized_accuracy_drop"]["score"] > 0.5  # every label says wrong
    # the same labels, as answers to a margin hand-out: a sample of the hardest rows, not of accuracy
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        ids = conn.scalars(select(PredictionRow.id)).all()
        conn.execute(
            insert(LabelRequestRow),
            [
                {"prediction_id": pid, "model_name": "sentiment", "model_version": 1, "handout": "h" * 32,
                 "strategy": "margin", "rank": i + 1, "margin": 0.01, "handed_to": "t", "handed_out_at": now,
                 "expires_at": now + timedelta(hours=1)}
                for i, pid in enumerate(ids)
            ],
        )  # fmt: skip
    serve(served_home, [r["text"] for r in topic_rows(5, seed=97)], wrong_labels=True)  # something new
    left_out = run_drift_check(store, artifacts, "sentiment", config)
    assert left_out.check.scores["window"]["labeled_by_margin"] == 80
    assert left_out.check.scores["realized_accuracy_drop"]["score"] is None  # 5 labels: too few to measure
