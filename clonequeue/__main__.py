"""``python -m clonequeue`` runs the CLI."""

from clonequeue.cli.main import run

run()
