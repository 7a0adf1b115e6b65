"""``python -m qgen.cli``: the same entry point as the ``qgen`` script."""

from qgen.cli import run

run()
