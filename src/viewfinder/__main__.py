"""``python -m viewfinder`` is the ``viewfinder`` command."""

from viewfinder.cli.main import app

app()
