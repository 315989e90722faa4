"""``python -m jvla.training --run <name>``: one run of the variant graph (see ``--list``)."""

import sys

from jvla.training.cli import main

main(sys.argv[1:])
