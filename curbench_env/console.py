"""The rich console that the CLI and the episode runner print to."""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console

#: Width of tables written to a file or a pipe (sweep logs, CI): rich's 80-column default would cut
#: a MiniVQA episode table (15 columns) down to one character per cell.
LOG_WIDTH = 200


def make_console(**kwargs: Any) -> Console:
    """A rich Console; when it writes to a log rather than a terminal (and ``COLUMNS`` is unset),
    lines are :data:`LOG_WIDTH` wide instead of 80."""
    console = Console(**kwargs)
    if "width" not in kwargs and "COLUMNS" not in os.environ and not console.is_terminal and not console.is_jupyter:
        console.width = LOG_WIDTH
    return console
