"""Labeled-file loading: every bad input gets one line naming the file, column and rows."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from retrain.data import (
    ColumnSpec,
    DataError,
    check_labeled,
    load_labeled_file,
    snapshot_digest,
    split_heldout,
)
from tests.textgen import topic_rows

COLS = ColumnSpec(text="text", label="label")


def write_csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def good_rows(n: int = 30) -> list[dict]:
    return topic_rows(n, seed=1)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet", ".tsv"])
def test_reads_each_format(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame(good_rows(30))
    path = tmp_path / f"data{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False)
    data = load_labeled_file(path, ColumnSpec(text="text", label="label", domain="domain"))
    assert len(data) == 30
    assert data.labels == ("food", "sports", "weather")
    assert set(data.frame["domain"]) == {"news", "blog"}
    assert data.frame["text"].tolist() == frame["text"].tolist()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        load_labeled_file(tmp_path / "nope.csv", COLS)


def test_unsupported_type(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_text("x")
    with pytest.raises(DataError, match=r"data\.xlsx: unsupported file type '\.xlsx'"):
        load_labeled_file(path, COLS)


def test_no_such_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", good_rows())
    with pytest.raises(DataError, match=r"d\.csv: no column 'sentence' \(columns: text, label, domain\)"):
        load_labeled_file(path, ColumnSpec(text="sentence", label="label"))


def test_empty_texts_are_counted(tmp_path: Path) -> None:
    rows = good_rows()
    rows[3]["text"] = "   "
    rows[7]["text"] = "\t"
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(
        DataError, match=r"d\.jsonl: column 'text' has 2 of 30 rows with empty or missing text \(rows 4, 8\)"
    ):
        load_labeled_file(path, COLS)


def test_missing_texts_in_csv(tmp_path: Path) -> None:
    rows = good_rows()
    rows[0]["text"] = None
    path = write_csv(tmp_path / "d.csv", rows)
    with pytest.raises(
        DataError, match=r"d\.csv: column 'text' has 1 of 30 rows with empty or missing text \(row 1\)"
    ):
        load_labeled_file(path, COLS)


def test_non_string_texts(tmp_path: Path) -> None:
    rows = good_rows()
    rows[2]["text"] = 42
    rows[5]["text"] = ["a", "list"]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(DataError, match=r"column 'text' has 2 of 30 rows that are not strings \(rows 3, 6\)"):
        load_labeled_file(path, COLS)


def test_missing_labels(tmp_path: Path) -> None:
    rows = good_rows()
    for i in (1, 2, 3):
        rows[i]["label"] = None
    path = write_csv(tmp_path / "d.csv", rows)
    with pytest.raises(
        DataError, match=r"d\.csv: column 'label' has 3 of 30 rows without a label \(rows 2, 3, 4\)"
    ):
        load_labeled_file(path, COLS)


def test_unknown_labels_against_known_set(tmp_path: Path) -> None:
    rows = good_rows()
    rows[4]["label"] = "politics"
    path = write_csv(tmp_path / "d.csv", rows)
    with pytest.raises(
        DataError, match=r"d\.csv: column 'label' has 1 rows with unknown labels \['politics'\]"
    ):
        load_labeled_file(path, COLS, allowed_labels=["food", "sports", "weather"])


def test_fewer_than_two_classes(tmp_path: Path) -> None:
    rows = [r for r in good_rows(60) if r["label"] == "food"]
    path = write_csv(tmp_path / "d.csv", rows)
    with pytest.raises(
        DataError, match=r"d\.csv: column 'label' has 1 class \('food'\) in 20 rows; at least 2 are needed"
    ):
        load_labeled_file(path, COLS)


def test_integer_labels_become_strings() -> None:
    raw = pd.DataFrame({"text": ["a b", "c d", "e f"], "label": [0, 1, 1]})
    data = check_labeled(raw, "mem", COLS)
    assert data.labels == ("0", "1")


def test_bad_times_are_counted() -> None:
    raw = pd.DataFrame(
        {"text": ["a", "b", "c"], "label": ["x", "y", "x"], "t": ["2024-01-01", "soon", "2024-01-03"]}
    )
    with pytest.raises(
        DataError, match=r"mem: column 't' has 1 of 3 rows that are not dates or times \(row 2\)"
    ):
        check_labeled(raw, "mem", ColumnSpec(text="text", label="label", time="t"))


def test_domain_filter_names_available_values() -> None:
    raw = pd.DataFrame(good_rows())
    spec = ColumnSpec(text="text", label="label", domain="domain")
    assert len(check_labeled(raw, "mem", spec, domains=["news"])) == 15
    with pytest.raises(
        DataError, match=r"column 'domain' has no rows in domain\(s\) \['tweets'\] \(values: blog, news\)"
    ):
        check_labeled(raw, "mem", spec, domains=["tweets"])


def test_duplicates_keep_the_latest_label() -> None:
    raw = pd.DataFrame(
        {
            "text": ["same  text", "other", "same text", "third"],
            "label": ["a", "b", "b", "a"],
            "t": ["2024-01-02", "2024-01-01", "2024-01-01", "2024-01-03"],
        }
    )
    data = check_labeled(raw, "mem", ColumnSpec(text="text", label="label", time="t"))
    assert data.dropped_duplicates == 1
    kept = dict(zip(data.frame["text"], data.frame["label"], strict=True))
    assert kept["same  text"] == "a"  # the later of the two by time, though earlier in the file


def test_time_split_holds_out_the_latest() -> None:
    rows = good_rows(50)
    for i, row in enumerate(rows):
        row["t"] = (pd.Timestamp("2024-01-01") + pd.Timedelta(hours=(i * 7) % 50)).isoformat()
    data = check_labeled(pd.DataFrame(rows), "mem", ColumnSpec(text="text", label="label", time="t"))
    split = split_heldout(data, test_size=0.2, seed=0)
    assert split.method == "time"
    assert len(split.heldout) == 10 and len(split.train) == 40
    assert split.train["time"].max() <= split.heldout["time"].min()


def test_stratified_split_is_seeded_and_disjoint() -> None:
    data = check_labeled(pd.DataFrame(good_rows(60)), "mem", COLS)
    a = split_heldout(data, test_size=0.25, seed=3)
    b = split_heldout(data, test_size=0.25, seed=3)
    c = split_heldout(data, test_size=0.25, seed=4)
    assert a.method == "stratified"
    assert a.heldout["text"].tolist() == b.heldout["text"].tolist()
    assert a.heldout["text"].tolist() != c.heldout["text"].tolist()
    assert not set(a.train["text"]) & set(a.heldout["text"])
    assert a.heldout["label"].value_counts().to_dict() == {"food": 5, "sports": 5, "weather": 5}


def test_too_few_rows_to_split() -> None:
    data = check_labeled(pd.DataFrame(good_rows(6)), "mem", COLS)
    with pytest.raises(DataError, match="6 usable rows; at least 10"):
        split_heldout(data, test_size=0.2, seed=0)


def test_snapshot_digest_depends_on_content_not_format(tmp_path: Path) -> None:
    frame = pd.DataFrame(good_rows(20))
    csv = write_csv(tmp_path / "a.csv", good_rows(20))
    frame.to_parquet(tmp_path / "a.parquet", index=False)
    from_csv = load_labeled_file(csv, COLS).frame
    from_parquet = load_labeled_file(tmp_path / "a.parquet", COLS).frame
    assert snapshot_digest(from_csv) == snapshot_digest(from_parquet)
    changed = from_csv.copy()
    changed.loc[0, "label"] = "weather" if changed.loc[0, "label"] != "weather" else "food"
    assert snapshot_digest(changed) != snapshot_digest(from_csv)


# --- any user's labels: spellings, types, counts, lengths, unstorable characters -------------------


def _labeled(labels: list) -> pd.DataFrame:  # type: ignore[type-arg]
    return pd.DataFrame({"text": [f"text number {i}" for i in range(len(labels))], "label": labels})


@pytest.mark.parametrize(
    ("variants", "named"),
    [
        (["Spam", "spam ", "ham", "Spam"], r"'Spam' \(rows 1, 4\) and 'spam' \(row 2\)"),
        (["not spam", "spam", "not  spam"], r"'not spam' \(row 1\) and 'not  spam' \(row 3\)"),
    ],
)
def test_labels_differing_only_in_case_or_spacing_are_refused(variants: list[str], named: str) -> None:
    with pytest.raises(
        DataError, match=rf"mem: column 'label' spells one label 2 ways .* {named}; labels are"
    ):
        check_labeled(_labeled(variants), "mem", COLS)


def test_labels_keep_case_spaces_punctuation_and_any_script(tmp_path: Path) -> None:
    wanted = ["très bien", "N/A", "5 ★", "NA", "Spam", "null"]
    path = write_csv(tmp_path / "d.csv", [{"text": f"t {i}", "label": wanted[i % 6]} for i in range(12)])
    data = load_labeled_file(path, COLS)
    assert data.labels == tuple(sorted(wanted))  # "N/A", "NA" and "null" are labels, not missing values


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_label_column_mixing_integers_and_strings(tmp_path: Path, suffix: str) -> None:
    rows = [{"text": f"text {i}", "label": [1, "spam", 2, "01"][i % 4]} for i in range(40)]
    path = tmp_path / f"d{suffix}"
    if suffix == ".csv":
        write_csv(path, rows)
    else:
        path.write_text("\n".join(json.dumps(r) for r in rows))
    data = load_labeled_file(path, COLS)
    # CSV cells are read as written ("01" stays "01"); JSON keeps 1 and "01" apart as well.
    assert data.labels == ("01", "1", "2", "spam")
    assert data.frame["label"].tolist()[:4] == ["1", "spam", "2", "01"]


def test_a_csv_label_column_whose_chunks_differ_in_type(tmp_path: Path) -> None:
    # datasets reads CSV in chunks of 10,000 rows: integers in the first, strings in the second.
    rows = [{"text": f"text {i}", "label": i % 3 if i < 10_500 else ["x", "y"][i % 2]} for i in range(11_000)]
    data = load_labeled_file(write_csv(tmp_path / "d.csv", rows), COLS)
    assert data.labels == ("0", "1", "2", "x", "y")


def test_integer_labels_from_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": [f"text {i}" for i in range(10)], "label": [i % 2 for i in range(10)]})
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    assert load_labeled_file(tmp_path / "d.parquet", COLS).labels == ("0", "1")


def test_more_than_the_class_limit_is_refused() -> None:
    from retrain.data import MAX_CLASSES

    assert check_labeled(_labeled([f"c{i}" for i in range(MAX_CLASSES)] * 2), "mem", COLS).labels
    with pytest.raises(
        DataError, match=rf"mem: column 'label' has 51 classes in 102 rows; at most {MAX_CLASSES} are"
    ):
        check_labeled(_labeled([f"c{i}" for i in range(MAX_CLASSES + 1)] * 2), "mem", COLS)


def test_a_label_longer_than_the_registry_column_is_refused() -> None:
    labels = ["a", "b", "a", "b", "x" * 201, "a"]
    with pytest.raises(
        DataError,
        match=r"mem: column 'label' has 1 of 6 rows with a label longer than 200 characters \(row 5\)",
    ):
        check_labeled(_labeled(labels), "mem", COLS)
    assert "x" * 200 in check_labeled(_labeled([*labels[:4], "x" * 200]), "mem", COLS).labels


def test_nul_and_lone_surrogates_are_replaced_in_texts_labels_and_domains(tmp_path: Path) -> None:
    raw = pd.DataFrame(
        {
            "text": ["nul \x00 here", "lone \ud800 surrogate", "plain"],
            "label": ["a\x00", "b", "b"],
            "domain": ["d\udfff", None, "web"],
        }
    )
    data = check_labeled(raw, "mem", ColumnSpec(text="text", label="label", domain="domain"))
    assert data.frame["text"].tolist() == ["nul \ufffd here", "lone \ufffd surrogate", "plain"]
    assert data.labels == ("a\ufffd", "b")
    assert data.frame["domain"].tolist() == ["d\ufffd", None, "web"]
    # The same from files: a JSONL escape of a lone surrogate, and a raw NUL byte in a CSV cell.
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"text": "a\\u0000b", "label": "x"}\n{"text": "c\\ud800d", "label": "y"}\n')
    assert load_labeled_file(jsonl, COLS).frame["text"].tolist() == ["a\ufffdb", "c\ufffdd"]
    csv = tmp_path / "d.csv"
    csv.write_bytes(b'text,label\n"a\x00b",x\n"01",y\n')
    frame = load_labeled_file(csv, COLS).frame
    assert frame["text"].tolist() == ["a\ufffdb", "01"] and frame["label"].tolist() == ["x", "y"]
