"""The simulator's own certificate authority and server certificate (trustme).

A fresh CA per simulator: the CA PEM is written to a file for clients to trust
(``ssl.create_default_context(cafile=...)``), the server certificate names ``127.0.0.1``,
``::1`` and ``localhost``. Nothing here is a secret worth protecting: it is a sandbox CA that
lives as long as the simulator.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme


class SimTLS:
    """A CA and a leaf certificate for the loopback names, with contexts for both ends."""

    __slots__ = ("_ca", "_leaf")

    def __init__(self) -> None:
        self._ca = trustme.CA(organization_name="FlexPay simulator")
        self._leaf = self._ca.issue_cert("127.0.0.1", "::1", "localhost")

    def write_ca(self, path: Path) -> Path:
        """Write the CA certificate (PEM) to ``path`` and return it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._ca.cert_pem.write_to_path(str(path))
        return path

    def server_context(self) -> ssl.SSLContext:
        """TLS 1.2+ server context presenting the leaf certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._leaf.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only this simulator's CA."""
        # cadata, not configure_trust on a default context: that would also load the system's
        # CA store, trusting far more than this simulator and costing ~50 ms of CPU per client.
        return ssl.create_default_context(cadata=self._ca.cert_pem.bytes().decode("ascii"))
