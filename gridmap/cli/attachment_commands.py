"""`gridmap attachments`: keep the photo storage clean and check it against the database."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import click

from gridmap.cli import main, with_store
from gridmap.config import Settings

if TYPE_CHECKING:
    from gridmap.store import Store

# attachments.SWEEP_GRACE in minutes, written out so that `gridmap --help` imports neither the photo code nor the
# store (tests/test_serve.py checks).
SWEEP_GRACE_MINUTES = 30


@main.group("attachments")
def attachments_group() -> None:
    """Case photos: sweep orphan files, verify checksums."""


@attachments_group.command("sweep")
@click.option(
    "--older-than",
    "minutes",
    type=click.IntRange(min=0),
    default=SWEEP_GRACE_MINUTES,
    show_default=True,
    help="Only files at least this many minutes old (younger ones may belong to an upload still running).",
)
@click.option("--all", "everything", is_flag=True, help="List the whole storage, not only the last two days.")
@with_store
def sweep(store: Store, settings: Settings, minutes: int, everything: bool) -> None:
    """Delete photo files that no case names (left by a server killed during an upload)."""
    from gridmap import attachments

    storage = attachments.storage_from_settings(settings)
    found = attachments.sweep(store, storage, older_than=dt.timedelta(minutes=minutes), days=None if everything else 2)
    click.echo(
        f"{storage.describe()}: {found.listed} files listed, {found.deleted} orphan files deleted, "
        f"{found.kept_recent} younger than {minutes} min kept"
    )


@attachments_group.command("verify")
@with_store
def verify(store: Store, settings: Settings) -> None:
    """Check every photo file against the SHA-256 in the database; exit 1 when one is missing or damaged."""
    from gridmap import attachments

    storage = attachments.storage_from_settings(settings)
    checked, problems = attachments.verify(store, storage)
    for problem in problems:
        click.echo(problem, err=True)
    click.echo(f"{storage.describe()}: {checked} files checked, {len(problems)} problems")
    if problems:
        raise SystemExit(1)
