"""``python -m vposer_data`` runs the command line."""

import sys

from vposer_data.cli import main

sys.exit(main())
