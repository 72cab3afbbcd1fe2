"""README.md stays true: every command and every setting is documented there."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from gridmap.cli import main
from gridmap.config import describe_settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def command_paths(group: click.Group, prefix: str = "gridmap") -> list[str]:
    paths = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            paths += command_paths(command, path)
        else:
            paths.append(path)
    return paths


@pytest.mark.parametrize("path", command_paths(main))
def test_every_command_is_in_the_readme(path):
    assert f"`{path}" in README, f"README.md does not document `{path}`"


@pytest.mark.parametrize("env", [env for _, env, _, _ in describe_settings()])
def test_every_setting_is_in_the_readme(env):
    assert f"`{env}`" in README, f"README.md does not document the setting {env}"
