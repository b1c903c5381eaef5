"""``python -m flexpay_batch`` is the ``flexpay-batch`` command."""

from flexpay_batch.entry import main

main()
