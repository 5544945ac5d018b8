"""What every command group of ``changzhi`` shares: its consoles and the one-line error.

Applications' command groups import these, so a user error looks the same whichever
application's command made it: one red ``changzhi:`` line and exit code 1.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from gis_core.db import DatabaseUnavailable
from gis_core.errors import PlatformError
from gis_core.settings import ConfigError

out = Console()
err = Console(stderr=True)
# What a user can get wrong, reported as one line instead of a traceback.
USER_ERRORS = (PlatformError, DatabaseUnavailable, ConfigError, OSError, ValueError)


def fail(message: str) -> typer.Exit:
    """Print the one red line and return the exit to raise."""
    err.print(f"[bold red]changzhi:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(1)
