"""``python -m flexpay_batch.sim``: the ``flexpay-batch sim`` command on its own."""

import typer

from flexpay_batch.sim.cli import sim

if __name__ == "__main__":
    typer.run(sim)
