"""``python -m flexpay_batch`` is the ``flexpay-batch`` command."""

from .cli import main

main()
