"""`driftline tokens create | list | revoke`: the command line manages named tokens in the database (as
admin, recorded as created by 'cli'); the secret is printed once and never listed."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from driftline.cli import main
from registry.settings import Settings
from registry.store import Registry


def cli(home: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["tokens", *args], env={"DRIFTLINE_HOME": str(home)})


def test_create_list_revoke(tmp_path: Path) -> None:
    home = tmp_path / "home"
    empty = cli(home, "list")
    assert empty.exit_code == 0 and "driftline tokens create NAME --role reviewer" in empty.stdout

    made = cli(home, "create", "alice", "--role", "reviewer")
    assert made.exit_code == 0, made.output
    assert "created token 'alice' with role reviewer" in made.stdout
    assert "not shown again" in made.stdout
    secret = re.search(r"^(dl_\S+)$", made.stdout, re.MULTILINE)
    assert secret, made.stdout
    registry = Registry.open(Settings(home=home))
    token = registry.tokens.authenticate(secret.group(1))
    assert token is not None and (token.name, token.role.value, token.created_by) == (
        "alice",
        "reviewer",
        "cli",
    )

    assert cli(home, "create", "bob", "--role", "labeler").exit_code == 0
    listed = cli(home, "list")
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "CREATED", "BY", "REVOKED"]
    assert [line.split()[:2] + line.split()[3:] for line in lines[1:]] == [
        ["alice", "reviewer", "cli", "-"],
        ["bob", "labeler", "cli", "-"],
    ]
    assert secret.group(1) not in listed.stdout

    revoked = cli(home, "revoke", "alice")
    assert revoked.exit_code == 0 and "revoked token 'alice'" in revoked.stdout
    assert "within 5 s" in revoked.stdout
    assert registry.tokens.authenticate(secret.group(1)) is None
    as_json = json.loads(cli(home, "list", "--json").stdout)
    assert [(t["name"], t["revoked_at"] is not None) for t in as_json] == [("alice", True), ("bob", False)]
    assert all("token_hash" not in t for t in as_json)

    again = cli(home, "revoke", "alice")
    assert again.exit_code == 1 and "token 'alice' has no active secret" in again.stderr
    unknown = cli(home, "revoke", "carol")
    assert unknown.exit_code == 1 and "token 'carol' does not exist" in unknown.stderr
    registry.close()


def test_bad_input_is_refused_naming_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bad_role = cli(home, "create", "alice", "--role", "boss")
    assert bad_role.exit_code == 2 and "--role" in bad_role.stderr
    bad_name = cli(home, "create", "al ice", "--role", "reader")
    assert bad_name.exit_code == 2 and "token name 'al ice' is not allowed" in bad_name.stderr
    assert cli(home, "create", "alice", "--role", "reader").exit_code == 0
    taken = cli(home, "create", "alice", "--role", "admin")
    assert taken.exit_code == 2 and "token 'alice' already exists" in taken.stderr
