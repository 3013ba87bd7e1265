"""DRIFTLINE_* variables: each settings model's names (aliases included), environments built from field
names (a misspelt name or a refused value fails there), a warning once for a variable no setting reads,
and every name the repository writes down is one that something reads."""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path

import pytest

from common import settings_env
from common.settings_env import (
    OTHER_NAMES,
    env_names,
    from_values,
    known_names,
    to_env,
    unknown_names,
    warn_unknown,
)
from driftline.settings import settings_models, warn_unknown_settings
from monitor.settings import MonitorSettings
from registry.settings import Settings
from service.settings import ServeSettings

ROOT = Path(__file__).resolve().parents[2]
NOT_VARIABLES = {"DRIFTLINE_META"}  # runtime.modelio's file-name constant


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_env, "_warned", set())


def test_names_are_the_prefixed_fields_or_their_aliases() -> None:
    names = env_names(MonitorSettings)
    assert names["DRIFTLINE_WINDOW_SIZE"] == "window_size"
    assert names["DRIFTLINE_MIN_LABELS_FLOOR"] == names["DRIFTLINE_MIN_NEW_LABELS"] == "min_labels_floor"
    assert "DRIFTLINE_MIN_LABELS_FLOOR" == next(k for k, v in names.items() if v == "min_labels_floor")
    assert env_names(Settings)["DRIFTLINE_HOME"] == "home"
    assert set(env_names(ServeSettings).values()) == set(ServeSettings.model_fields)


def test_an_environment_from_field_names_reads_back_as_those_values(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "window_size": 300,
        "min_labels_floor": 40,
        "retrain_on_drift": False,
        "retrain": {"train": {"epochs": 2}, "assembly": {"min_new_labels": 40}},
        "k8s_node_selector": {"pool": "gpu"},
        "check_interval_s": 86_400,
    }
    env = to_env(MonitorSettings, **values)
    assert env["DRIFTLINE_MIN_LABELS_FLOOR"] == "40" and env["DRIFTLINE_RETRAIN_ON_DRIFT"] == "false"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    read = MonitorSettings()
    others = {name: value for name, value in values.items() if name != "retrain"}
    assert {name: getattr(read, name) for name in others} == others
    assert read.retrain.to_record() == values["retrain"]  # the run contract, parsed


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"window_siz": 300}, "MonitorSettings has no setting 'window_siz' .*'window_size'"),
        ({"DRIFTLINE_WINDOW_SIZE": 300}, "no setting 'DRIFTLINE_WINDOW_SIZE'"),
        (
            {"window_size": 3},
            "MonitorSettings.window_size: Input should be greater than or equal to 10 .got 3.",
        ),
        ({"launcher": "slurm"}, "MonitorSettings.launcher: .*'slurm'"),
    ],
)
def test_a_misspelt_name_or_a_refused_value_fails_at_once(values: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        to_env(MonitorSettings, **values)


def test_values_alone_never_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_WINDOW_SIZE", "3")  # refused if it were read
    monkeypatch.setenv("DRIFTLINE_MODEL_NAME", "from-the-shell")
    assert from_values(MonitorSettings, {"drift_persistence": 2}).window_size == 500
    assert from_values(Settings, {}).model_name == "sentiment"


def test_unknown_names_with_the_closest_known_one() -> None:
    known = known_names([Settings, MonitorSettings])
    environ = {
        "DRIFTLINE_WINDOW_SIZ": "1",
        "DRIFTLINE_HOME": "h",
        "driftline_home": "h",  # pydantic-settings ignores the case: so does the check
        "DRIFTLINE_TEST_DATABASE_URL": "postgresql://x",
        "DRIFTLINE_ZZZZ": "1",
        "PATH": "/bin",
    }
    assert unknown_names(environ, known) == {
        "DRIFTLINE_WINDOW_SIZ": "DRIFTLINE_WINDOW_SIZE",
        "DRIFTLINE_ZZZZ": None,
    }


def test_an_unknown_name_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    known = known_names([MonitorSettings])
    with caplog.at_level(logging.WARNING, logger="common.settings_env"):
        for _ in range(3):
            assert list(warn_unknown({"DRIFTLINE_COOLDOWN": "0"}, known)) == ["DRIFTLINE_COOLDOWN"]
    assert [r.getMessage() for r in caplog.records] == [
        "DRIFTLINE_COOLDOWN is set, but no Driftline setting has that name: did you mean DRIFTLINE_COOLDOWN_S?"
    ]


def test_every_models_names_and_those_read_elsewhere_are_known(caplog: pytest.LogCaptureFixture) -> None:
    environ = {
        "DRIFTLINE_HOME": "h",  # the registry's
        "DRIFTLINE_MAX_BODY_BYTES": "2048",  # the service's
        "DRIFTLINE_MIN_NEW_LABELS": "10",  # the monitor's, by its older name
        **{name: "1" for name in OTHER_NAMES},
    }
    with caplog.at_level(logging.WARNING):
        assert warn_unknown_settings(environ) == {}
        assert warn_unknown_settings({**environ, "DRIFTLINE_MAX_BODY_BYTE": "1"}) == {
            "DRIFTLINE_MAX_BODY_BYTE": "DRIFTLINE_MAX_BODY_BYTES"
        }
    assert len(caplog.records) == 1


def test_every_driftline_name_the_repository_writes_down_is_read_by_something() -> None:
    """Code, tests, deploy files and docs: a name nothing reads is a typo (or a setting that went away)."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    known = known_names(settings_models()) | NOT_VARIABLES
    unread: dict[str, set[str]] = {}
    for name in files.stdout.split():
        path = ROOT / name
        if path == Path(__file__) or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for variable in set(re.findall(r"\bDRIFTLINE_[A-Z0-9_]*[A-Z0-9]\b", text)) - known:
            unread.setdefault(variable, set()).add(name)
    assert unread == {}
