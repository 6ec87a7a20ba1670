"""The ``trapflow`` command line: one typer app, its commands grouped by what they work on."""

from flows.cli.commands import app, main

__all__ = ["app", "main"]
