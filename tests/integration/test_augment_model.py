"""Augmentation (issue 27) from the packaged base model folder, as training will use it: the real
tokenizer and token embeddings give the neighbour table, and ``augment`` edits rows with it."""

from __future__ import annotations

import pandas as pd

from retrain.augment import AUGMENTED, augment, neighbour_table
from retrain.train import default_base_model_path

ROWS = pd.DataFrame(
    {
        "text": [f"The movie was good and the actors were great, take {i}" for i in range(12)]
        + [f"A terrible film with a boring story, part {i}" for i in range(4)],
        "label": ["pos"] * 12 + ["neg"] * 4,
    }
)


def test_a_neighbour_table_from_the_model_folder_drives_augment() -> None:
    table = neighbour_table(default_base_model_path(), ROWS["text"], k=4)
    assert {"movie", "good", "terrible", "film", "boring", "story"} <= set(table)
    assert not {"a", "i"} & set(table)
    assert all(len(found) == 4 and word not in found for word, found in table.items())
    assert {"film", "movies"} & set(table["movie"])

    result = augment(ROWS, table, strength=0.5, seed=0)
    assert result.added == {"pos": 0, "neg": 4}
    new = result.frame[result.frame[AUGMENTED]]
    assert (new["label"] == "neg").all() and all(t.strip() for t in new["text"])
    words = {w.strip(",.").lower() for t in new["text"] for w in t.split()}
    original = {w.strip(",.").lower() for t in ROWS["text"].iloc[12:] for w in t.split()}
    assert words - original <= {n for found in table.values() for n in found}  # new words are neighbours
