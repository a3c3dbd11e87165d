"""Entry point of the `countermand` command."""

from __future__ import annotations

import typer

from cli import topics

app = typer.Typer(help="Countermand: enforce legal directives on AI model serving.", no_args_is_help=True)
app.add_typer(topics.app, name="topics")

if __name__ == "__main__":
    app()
