"""``python -m logmr``: the same as the ``logmr`` command."""

from logmr.cli.main import main

main()
