"""The console entry point, kept tiny so a Ctrl-C during start-up never shows a traceback.

Importing the command line pulls in aiohttp, pydantic and rich, which can take a second on a
loaded machine; a Ctrl-C in that second would otherwise print a KeyboardInterrupt traceback.
Nothing has been read or sent yet at that point, so it is a plain interruption (exit 130).
"""

from __future__ import annotations

import sys


def main() -> None:
    """Import and run ``flexpay_batch.cli.app.main``; an interrupt while importing exits 130."""
    try:
        from flexpay_batch.cli.app import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted before the run started; nothing was sent\n")
        sys.exit(130)
    cli_main()
