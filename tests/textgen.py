"""Small labeled text sets written by the tests themselves (no downloads, no third-party data)."""

from __future__ import annotations

import random

TOPICS: dict[str, tuple[list[str], list[str]]] = {
    "sports": (
        ["the striker", "our goalkeeper", "the coach", "the home team", "a young sprinter", "the referee"],
        [
            "scored twice in the final match",
            "won the championship game",
            "trained hard before the race",
            "missed a penalty in extra time",
            "broke the league record",
            "signed with a rival club",
        ],
    ),
    "food": (
        ["the chef", "my grandmother", "the bakery", "a street vendor", "the new restaurant", "our cook"],
        [
            "baked fresh bread with garlic",
            "served a spicy noodle soup",
            "roasted vegetables with olive oil",
            "made a chocolate cake for dessert",
            "grilled salmon with lemon",
            "cooked rice with beans and pepper",
        ],
    ),
    "weather": (
        ["the forecast", "this morning", "the coastal region", "the valley", "last night", "the weekend"],
        [
            "brought heavy rain and strong wind",
            "had a thunderstorm with hail",
            "turned cold with snow showers",
            "stayed sunny and warm",
            "saw thick fog until noon",
            "expects a heatwave and dry air",
        ],
    ),
}
FILLERS = ["", "apparently", "once again", "as expected", "to everyone's surprise", "early on"]


def topic_rows(
    n: int, *, seed: int = 0, labels: tuple[str, ...] = ("sports", "food", "weather")
) -> list[dict]:
    """``n`` rows of {text, label, domain} with distinct texts, classes in turn."""
    rng = random.Random(seed)
    rows: list[dict] = []
    seen: set[str] = set()
    while len(rows) < n:
        label = labels[len(rows) % len(labels)]
        subjects, predicates = TOPICS[label]
        text = f"{rng.choice(subjects)} {rng.choice(FILLERS)} {rng.choice(predicates)}".replace("  ", " ")
        text = text[0].upper() + text[1:] + rng.choice([".", "!", "..."])
        if text in seen:
            continue
        seen.add(text)
        rows.append({"text": text, "label": label, "domain": "news" if len(rows) % 2 else "blog"})
    return rows


def market_rows(n: int, *, seed: int = 0) -> list[dict[str, str]]:
    """The planted drift: market news v1 never saw, labelled by the move's direction ('sports' up, 'food'
    down, in this odd new world). Whatever v1 answers for the unknown words, it is right about half the
    time at most; a model trained on the new labels learns the verbs."""
    rng = random.Random(seed)
    up, down = ["rose", "jumped", "rallied", "climbed"], ["fell", "slipped", "dropped", "sank"]
    firms = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne"]
    rows = []
    for i in range(n):
        rising = i % 2 == 0
        verb = rng.choice(up if rising else down)
        rows.append(
            {
                "text": f"{rng.choice(firms)} shares {verb} {i % 17 + 1} percent after quarterly earnings number {i}",
                "label": "sports" if rising else "food",
                "domain": "finance",
            }
        )
    return rows
