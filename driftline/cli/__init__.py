"""``driftline``: the command line. Thin: parses flags, calls the packages, prints results.

One module per group of commands; importing them puts their commands on :data:`main`.
"""

from driftline.cli import labels, models, replay, runs, serve, tokens  # noqa: F401  (registers the commands)
from driftline.cli.common import main

__all__ = ["main"]
