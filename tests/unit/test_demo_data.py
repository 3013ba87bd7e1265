"""Parsing of the VADER ground-truth files (the data itself is fetched by the demo, not here)."""

from __future__ import annotations

import io
import tarfile

import pytest

from driftline.demo_data import label_for, member_bytes, parse_ground_truth
from registry.errors import DriftlineError


@pytest.mark.parametrize(
    ("score", "label"),
    [
        (-4.0, "negative"),
        (-0.5, "negative"),
        (-0.49, "neutral"),
        (0.0, "neutral"),
        (0.49, "neutral"),
        (0.5, "positive"),
        (3.9, "positive"),
    ],
)
def test_label_thresholds(score: float, label: str) -> None:
    assert label_for(score) == label


def test_parse_ground_truth_handles_crlf_latin1_and_entities() -> None:
    raw = (
        "1\t2.5\tA caf\xe9 worth the trip &amp; the wait.\r\n"
        "2\t-1.2\tDull.\tstill the text\r\n"
        "3\t0.1\t   \r\n"
        "\r\n"
    ).encode("latin-1")
    rows = parse_ground_truth(raw, "tweets")
    assert rows == [
        {
            "id": "tweets/1",
            "text": "A café worth the trip & the wait.",
            "score": 2.5,
            "label": "positive",
            "domain": "tweets",
        },
        {
            "id": "tweets/2",
            "text": "Dull.\tstill the text",
            "score": -1.2,
            "label": "negative",
            "domain": "tweets",
        },
    ]


def test_member_bytes_reads_a_file_and_refuses_a_folder() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = tarfile.TarInfo("pkg/tweets_GroundTruth.txt")
        data.size = 3
        archive.addfile(data, io.BytesIO(b"1\t2"))
        folder = tarfile.TarInfo("pkg/folder")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as archive:
        assert member_bytes(archive, archive.getmember("pkg/tweets_GroundTruth.txt")) == b"1\t2"
        with pytest.raises(DriftlineError, match="pkg/folder in the .* sdist is not a file"):
            member_bytes(archive, archive.getmember("pkg/folder"))
