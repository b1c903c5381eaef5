"""``python -m flexpay_batch`` is the ``flexpay-batch`` command."""

from .entry import main

main()
