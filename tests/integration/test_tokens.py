"""Named API tokens in the registry, on SQLite and (when configured) PostgreSQL: made with a secret shown
once, stored as its sha256, listed without it, revoked for good; names and roles are checked."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import text

from registry.entities import ApiToken, Role, as_dict
from registry.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from registry.store import Registry


def test_create_authenticate_list_revoke(registry: Registry) -> None:
    store = registry.tokens
    assert store.list() == [] and not store.any_active()
    alice, secret = store.create("alice", "reviewer", created_by="cli")
    assert secret.startswith("dl_") and len(secret) > 40
    assert (alice.name, alice.role, alice.created_by, alice.revoked_at) == (
        "alice",
        Role.REVIEWER,
        "cli",
        None,
    )
    assert alice.created_at.tzinfo is not None
    bob, bob_secret = store.create("bob.labels-1", Role.LABELER, created_by="cli")
    assert bob_secret != secret

    assert store.authenticate(secret) == alice
    assert store.authenticate(bob_secret) == bob
    assert store.authenticate(secret + "x") is None
    assert store.authenticate("") is None
    assert store.any_active()

    listed = store.list()
    assert [t.name for t in listed] == ["alice", "bob.labels-1"]
    assert all(isinstance(t, ApiToken) for t in listed)
    assert all("token_hash" not in as_dict(t) and secret not in str(as_dict(t)) for t in listed)

    revoked = store.revoke("alice")
    assert revoked.revoked_at is not None
    assert store.authenticate(secret) is None  # revoked for good
    assert store.authenticate(bob_secret) == bob
    assert [t.revoked_at is not None for t in store.list()] == [True, False]
    with pytest.raises(NotFoundError, match="token 'alice' has no active secret: it was revoked at") as twice:
        store.revoke("alice")
    assert twice.value.details == {"field": "name"}
    with pytest.raises(NotFoundError, match="token 'carol' does not exist"):
        store.revoke("carol")
    store.revoke("bob.labels-1")
    assert not store.any_active()


def test_only_the_hash_of_the_secret_is_stored(registry: Registry) -> None:
    _, secret = registry.tokens.create("ci", "admin", created_by="cli")
    with registry.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM api_tokens")).mappings().all()
    assert len(rows) == 1
    assert rows[0]["token_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert all(secret not in str(value) for value in rows[0].values())


def test_a_name_is_taken_for_good(registry: Registry) -> None:
    store = registry.tokens
    store.create("alice", "reader", created_by="cli")
    with pytest.raises(AlreadyExistsError, match="token 'alice' already exists") as taken:
        store.create("alice", "admin", created_by="cli")
    assert taken.value.details == {"field": "name"}
    store.revoke("alice")
    with pytest.raises(AlreadyExistsError, match="token 'alice' already exists"):
        store.create("alice", "reader", created_by="cli")
    assert len(store.list()) == 1


@pytest.mark.parametrize(
    ("name", "role", "field", "words"),
    [
        ("", "reader", "name", "token name '' is not allowed"),
        ("a" * 65, "reader", "name", "1 to 64 letters"),
        ("-alice", "reader", "name", "starting with a letter or digit"),
        ("al ice", "reader", "name", "is not allowed"),
        ("../etc", "reader", "name", "is not allowed"),
        ("api-token", "reader", "name", "reserved for DRIFTLINE_API_TOKEN"),
        ("alice", "boss", "role", "role 'boss' is not one of reader, labeler, reviewer, admin"),
        ("alice", "Admin", "role", "is not one of"),
    ],
)
def test_bad_names_and_roles_are_refused_naming_the_field(
    registry: Registry, name: str, role: str, field: str, words: str
) -> None:
    store = registry.tokens
    with pytest.raises(InvalidInputError, match=words.replace(".", r"\.")) as refused:
        store.create(name, role, created_by="cli")
    assert refused.value.details == {"field": field}
    assert store.list() == []


def test_a_64_character_name_is_allowed(registry: Registry) -> None:
    token, _ = registry.tokens.create("a" * 64, "reader", created_by="cli")
    assert token.name == "a" * 64


def test_roles_are_ordered() -> None:
    assert [r.value for r in Role] == ["reader", "labeler", "reviewer", "admin"]
    assert Role.ADMIN.allows(Role.REVIEWER) and Role.REVIEWER.allows(Role.REVIEWER)
    assert not Role.LABELER.allows(Role.REVIEWER) and not Role.READER.allows(Role.LABELER)
