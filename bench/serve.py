"""Serving benchmark: is Driftline's /predict as fast as the bare model allows?

    .venv/bin/python -m bench.serve            # about 2.5 minutes; prints a table, writes bench/results/serve.json

Measured in one run, on one machine, with one model (MiniLM-L6, all 6 layers, 3 classes):
  (a) the bare model in-process: batches of 32, tokenization included;
  (b) POST /predict over HTTP, 16 concurrent clients each sending one text per request, logging on;
  (c) the same with the prediction log off;
  (d) p50 / p99 latency with requests arriving at half of (b)'s rate (open loop, Poisson), next to the
      latency of a single request on an idle server.
Targets: (b)/(a) >= 0.90, (b)/(c) >= 0.95, p99 at half load <= 3 x single-request latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.loadgen import LoadResult, closed_loop, open_loop, quiet_gc, sequential

ROOT = Path(__file__).resolve().parent.parent
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "BENTOML_DO_NOT_TRACK": "True",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def load_texts(n: int, seed: int) -> list[str]:
    import pandas as pd

    from driftline.demo_data import fetch_vader

    frame = pd.read_csv(fetch_vader(ROOT / ".driftline" / "cache" / "demo"))
    texts = [t for t in frame["text"].tolist() if isinstance(t, str) and t.strip() and len(t) <= 2000]
    random.Random(seed).shuffle(texts)
    return texts[:n]


def make_home(home: Path, seed: int) -> None:
    """A registry whose champion is MiniLM-L6 with a 3-class head (weights do not matter for speed)."""
    from registry.artifacts import LocalArtifactStore
    from registry.entities import CHAMPION, NewModelVersion
    from registry.modelio import save_classifier
    from registry.settings import Settings
    from registry.store import Registry
    from retrain.config import TrainConfig
    from retrain.train import load_base, resolve_base_model

    labels = ("negative", "neutral", "positive")
    cfg = TrainConfig(seed=seed)
    model, tokenizer = load_base(resolve_base_model(cfg.base_model), labels, cfg)
    settings = Settings(home=home)
    with tempfile.TemporaryDirectory() as tmp:
        out = save_classifier(model, tokenizer, Path(tmp) / "m", max_length=cfg.max_length, extra={})
        ref, _ = LocalArtifactStore(settings.artifact_root).put_dir(out)
    Registry.open(settings).register_version(
        "sentiment",
        NewModelVersion(
            base_model=cfg.base_model, artifact=ref, labels=labels, metrics={}, config=cfg.to_dict()
        ),
        set_aliases=[CHAMPION],
        actor="bench",
        reason="benchmark model",
    )


def bare_model(home: Path, texts: list[str], batch: int) -> dict[str, float]:
    import torch

    from registry.artifacts import LocalArtifactStore
    from registry.modelio import load_version
    from registry.settings import Settings
    from registry.store import Registry

    settings = Settings(home=home)
    version = Registry.open(settings).get_version_by_alias("sentiment", "champion")
    loaded = load_version(LocalArtifactStore(settings.artifact_root), version)
    torch.set_num_threads(len(os.sched_getaffinity(0)))

    def run(chunk: list[str]) -> None:
        enc = loaded.tokenizer(
            chunk, truncation=True, max_length=loaded.max_length, padding=True, return_tensors="pt"
        )
        with torch.inference_mode():
            torch.softmax(loaded.model(**enc).logits, dim=-1).numpy()

    def timed(fn) -> dict[str, float]:  # type: ignore[no-untyped-def]
        for i in range(3):
            fn(texts[i * batch : (i + 1) * batch])
        started = time.perf_counter()
        for i in range(0, len(texts), batch):
            fn(texts[i : i + batch])
        seconds = time.perf_counter() - started
        return {"texts_per_s": len(texts) / seconds, "seconds": seconds, "texts": len(texts), "batch": batch}

    from service.runtime import ServingModel

    serving = ServingModel(loaded, version, trace=True)
    return {"eager": timed(run), "traced": {**timed(serving.predict), "traced_ok": serving.traced}}


class Server:
    def __init__(self, home: Path, port: int, *, log_predictions: bool) -> None:
        env = {
            **os.environ,
            **OFFLINE,
            "DRIFTLINE_HOME": str(home),
            "DRIFTLINE_LOG_PREDICTIONS": "true" if log_predictions else "false",
        }
        self.log = open(home / f"serve-{port}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("bentoml")),
                "serve",
                "service.app:Driftline",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: see {self.log.name}")
            time.sleep(0.5)
        raise RuntimeError(f"server not ready: see {self.log.name}")

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(60)
        self.log.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(load) -> LoadResult:  # type: ignore[no-untyped-def]
    with quiet_gc():
        return asyncio.run(load)


def summarize(r: LoadResult) -> dict[str, float]:
    return {
        "req_per_s": r.rps,
        "ok": r.ok,
        "failed": r.failed,
        "p50_ms": r.percentile(50),
        "p99_ms": r.percentile(99),
        "statuses": {str(k): v for k, v in r.statuses.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement time per phase")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve.json")
    args = parser.parse_args()
    os.environ.update(OFFLINE)

    texts = load_texts(4000, args.seed)
    with tempfile.TemporaryDirectory(prefix="driftline-bench-") as tmp:
        home = Path(tmp) / "home"
        make_home(home, args.seed)
        print("(a) bare model, batch 32 ...", flush=True)
        both = bare_model(home, texts[:1024], 32)
        bare, traced = both["eager"], both["traced"]

        port = free_port()
        server = Server(home, port, log_predictions=True)
        try:
            print("(b) /predict, logging on ...", flush=True)
            logged = measure(
                closed_loop("127.0.0.1", port, texts, clients=args.clients, seconds=args.seconds)
            )
            print("    single-request latency ...", flush=True)
            single = measure(sequential("127.0.0.1", port, texts, count=200))
            print("(d) half load, open loop ...", flush=True)
            half = measure(open_loop("127.0.0.1", port, texts, rate=logged.rps / 2, seconds=args.seconds))
        finally:
            server.stop()
        from registry.settings import Settings
        from registry.store import Registry

        rows_logged = Registry.open(Settings(home=home)).count_predictions()

        port = free_port()
        server = Server(home, port, log_predictions=False)
        try:
            print("(c) /predict, logging off ...", flush=True)
            unlogged = measure(
                closed_loop("127.0.0.1", port, texts, clients=args.clients, seconds=args.seconds)
            )
        finally:
            server.stop()

    ratios = {
        "b_over_a": logged.rps / bare["texts_per_s"],
        "b_over_a_traced": logged.rps / traced["texts_per_s"],
        "b_over_c": logged.rps / unlogged.rps,
        "p99_half_over_single": half.percentile(99) / single.percentile(50),
    }
    targets = {"b_over_a": 0.90, "b_over_c": 0.95, "p99_half_over_single": 3.0}
    met = {
        "b_over_a": ratios["b_over_a"] >= targets["b_over_a"],
        "b_over_c": ratios["b_over_c"] >= targets["b_over_c"],
        "p99_half_over_single": ratios["p99_half_over_single"] <= targets["p99_half_over_single"],
    }
    report = {
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        },
        "model": "MiniLM-L6 (6 layers), 3 classes, max_length 64",
        "clients": args.clients,
        "seconds_per_phase": args.seconds,
        "a_bare_model": bare,
        "a_traced_serving_model_in_process": traced,
        "b_predict_logging_on": summarize(logged),
        "c_predict_logging_off": summarize(unlogged),
        "single_request": summarize(single),
        "d_half_load": {**summarize(half), "offered_rate": logged.rps / 2},
        "rows_logged_during_b_and_d": rows_logged,
        "ratios": ratios,
        "targets": targets,
        "met": met,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))

    print()
    print(f"{'measurement':<48}{'value':>14}")
    print("-" * 62)
    print(f"{'(a) bare model, batch 32 (texts/s)':<48}{bare['texts_per_s']:>14.1f}")
    print(f"{'(a2) the traced serving model in-process (texts/s)':<48}{traced['texts_per_s']:>14.1f}")
    print(f"{'(b) /predict, 16 clients, logging on (req/s)':<48}{logged.rps:>14.1f}")
    print(f"{'(c) /predict, 16 clients, logging off (req/s)':<48}{unlogged.rps:>14.1f}")
    print(f"{'    (b) p50 / p99 latency (ms)':<48}{logged.percentile(50):>7.1f}{logged.percentile(99):>7.1f}")
    print(f"{'single request, idle server, p50 (ms)':<48}{single.percentile(50):>14.1f}")
    print(
        f"{'(d) half load ' + f'({logged.rps / 2:.0f} req/s) p50 / p99 (ms)':<48}"
        f"{half.percentile(50):>7.1f}{half.percentile(99):>7.1f}"
    )
    print(f"{'failed requests (b, c, d)':<48}{logged.failed + unlogged.failed + half.failed:>14d}")
    print("-" * 62)
    for key, label in (
        ("b_over_a", "(b)/(a)  target >= 0.90"),
        ("b_over_c", "(b)/(c)  target >= 0.95"),
        ("p99_half_over_single", "p99(d)/single  target <= 3"),
    ):
        print(f"{label:<48}{ratios[key]:>10.2f}  {'met' if met[key] else 'NOT met'}")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
