"""``python -m vposer_data`` runs the command line."""

from vposer_data.cli import run

run()
