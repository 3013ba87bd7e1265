"""The benchmarks' smoke runs: ``python -m bench.monitor --quick``, ``python -m bench.train --quick`` and
``python -m bench.serve --quick`` (its per-length section only) finish and write the fields their tables
promise. Timings are not checked (tiny sizes, shared cores):
this only keeps the scripts from rotting while the code they measure changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from common.offline import OFFLINE_ENV
from driftline.demo_data import OUTPUT

ROOT = Path(__file__).resolve().parents[2]
DEMO_CSV = ROOT / ".driftline" / "cache" / "demo" / OUTPUT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DEMO_CSV.is_file(), reason="demo data not fetched yet (`driftline demo` does)"),
]


def run_quick(module: str, out: Path) -> dict[str, Any]:
    """Run ``module --quick`` in a fresh interpreter, as a person would, and read its JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, **OFFLINE_ENV},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"wrote {out}" in proc.stdout
    return json.loads(out.read_text())


def test_monitor_quick(tmp_path: Path) -> None:
    report = run_quick("bench.monitor", tmp_path / "monitor.json")
    assert report["quick"] is True
    assert {"cpus", "torch_threads", "platform", "versions"} <= report["machine"].keys()
    assert report["one_off"]["import"]["evidently_s"] > 0
    assert report["one_off"]["first_check_s"] > 0
    assert [r["rows"] for r in report["sizes"]] == [300, 600]
    for row in report["sizes"]:
        for key in ("a_signals", "b_evidently", "c_check_no_report", "d_check_with_report"):
            assert row[key]["median_s"] > 0
        assert {"ratio_to_smallest", "per_1k_rows_s", "report_write_s"} <= row.keys()
        assert row["report_bytes"]["html"] > 0 and row["report_bytes"]["json"] > 0
        assert "embedding_drift" in row["scores"]
    assert report["target"] == {"measured": False, "target_s": 5.0}


def test_train_quick(tmp_path: Path) -> None:
    report = run_quick("bench.train", tmp_path / "train.json")
    assert report["quick"] is True
    results = report["results"]
    a, b, c = results["a_trainer"], results["b_plain_loop"], results["c_full_protocol"]
    for run in (a, b, c):
        assert run["examples_per_s"] > 0 and run["loss"] > 0
    assert a["steps"] == b["steps"]  # the same work
    assert abs(a["loss"] - b["loss"]) < 0.1
    assert c["n_validation"] > 0  # the full protocol did validate
    assert {"trainer_over_plain", "full_over_plain", "loss_a_minus_b"} <= report["ratios"].keys()


def test_serve_lengths_quick(tmp_path: Path) -> None:
    out = tmp_path / "serve.json"
    earlier = {"a_bare_model": {"texts_per_s": 1.0}, "lengths": {"stale": True}}
    out.write_text(json.dumps(earlier))  # what a full run wrote: kept, but for the "lengths" key
    report = run_quick("bench.serve", out)
    assert report["a_bare_model"] == earlier["a_bare_model"]
    section = report["lengths"]
    assert section["quick"] is True and "stale" not in section
    assert {"cpus", "torch_threads", "platform", "versions"} <= section["machine"].keys()
    rows = section["rows"]
    assert [r["max_length"] for r in rows] == [64, 128, 256, 512]
    assert section["batches"] == [1, 32]
    for row in rows:
        assert row["texts_mean_tokens_untruncated"] >= row["max_length"]
        for batch in (1, 32):
            cell = row[f"batch_{batch}"]
            assert cell["batch"] == batch and cell["texts_per_run"] == cell["batches_per_run"] * batch
            assert cell["texts_per_s"] > 0 and cell["ms_per_batch"] > 0
            assert len(cell["runs_s"]) == section["repeats"]
            assert cell["texts_per_s_ratio_to_64"] > 0 and cell["ms_per_batch_ratio_to_64"] > 0
    for batch in (1, 32):
        assert rows[0][f"batch_{batch}"]["texts_per_s_ratio_to_64"] == 1.0
        assert rows[0][f"batch_{batch}"]["ms_per_batch_ratio_to_64"] == 1.0
