"""``python -m exchange.cli``: the ``lijiao`` command, as tests and crash drills start it."""

from exchange.cli.main import main

main()
