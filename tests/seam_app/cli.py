"""The probe's one command."""

from __future__ import annotations

import typer


def register(root: typer.Typer) -> None:
    group = typer.Typer(help="The seam probe.", no_args_is_help=True)

    @group.command("hello")
    def hello() -> None:
        """Say which application answers."""
        typer.echo("seam_probe says hello")

    root.add_typer(group, name="seam_probe")
