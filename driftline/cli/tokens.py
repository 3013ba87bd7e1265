"""Named API tokens with roles: ``tokens create``, ``tokens list``, ``tokens revoke``."""

from __future__ import annotations

import json

import click

from driftline.cli.common import handle_errors, main, open_registry
from registry.entities import Role, as_dict
from registry.settings import get_settings


@main.group()
def tokens() -> None:
    """Named API tokens with roles (reader < labeler < reviewer < admin). The command line talks to the
    database directly, so it acts as admin; tokens it makes are recorded as created by 'cli'."""


@tokens.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    required=True,
    help="reader: GETs where reads are closed; labeler: /feedback; reviewer: promote, rollback, approve, "
    "reject, runs, checks; admin: everything.",
)
@handle_errors
def tokens_create(name: str, role: str) -> None:
    """Create the token NAME (its name is the actor recorded on what it does) and print its secret once."""

    token, secret = open_registry(get_settings()).tokens.create(name, role, created_by="cli")
    click.echo(f"created token '{token.name}' with role {token.role.value}; its secret:")
    click.echo(secret)
    click.echo(
        "store it now: it is not shown again (only its hash is kept). Send it as "
        "'Authorization: Bearer <secret>'."
    )


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@handle_errors
def tokens_list(as_json: bool) -> None:
    """List the tokens (never their secrets), oldest first, revoked ones included."""

    items = open_registry(get_settings()).tokens.list()
    if as_json:
        click.echo(json.dumps([as_dict(t) for t in items], indent=1))
        return
    if not items:
        click.echo("no tokens yet: create one with `driftline tokens create NAME --role reviewer`")
        return
    click.echo(f"{'NAME':<24}{'ROLE':<10}{'CREATED':<21}{'BY':<12}REVOKED")
    for t in items:
        revoked = t.revoked_at.isoformat()[:19] if t.revoked_at else "-"
        click.echo(
            f"{t.name:<24}{t.role.value:<10}{t.created_at.isoformat()[:19]:<21}{t.created_by:<12}{revoked}"
        )


@tokens.command("revoke")
@click.argument("name")
@handle_errors
def tokens_revoke(name: str) -> None:
    """Revoke the token NAME: a running service refuses it within a few seconds (its lookup cache)."""
    from registry.store.tokens import CACHE_TTL_S

    token = open_registry(get_settings()).tokens.revoke(name)
    click.echo(
        f"revoked token '{token.name}' (role {token.role.value}); a running service refuses it within "
        f"{CACHE_TTL_S:g} s"
    )
