"""The OpenAPI 3.1 description of the simulated API, kept as ``sim/openapi.json``.

The file in the repository is the single source; ``GET /v1/openapi.json`` serves it with
``servers`` pointing at the host the client asked for (``https://HOST:PORT/v1``). It needs no
token and is never rate limited.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from aiohttp import web

from flexpay_batch.sim.jsonutil import dumps


def load_document() -> dict[str, Any]:
    """The OpenAPI document as stored in the package."""
    text = resources.files("flexpay_batch.sim").joinpath("openapi.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def add_routes(app: web.Application) -> None:
    """Serve the document at ``GET /v1/openapi.json``, read once per app, encoded per host."""
    document = load_document()
    encoded: dict[str, bytes] = {}

    async def serve(request: web.Request) -> web.Response:
        host = request.host
        body = encoded.get(host)
        if body is None:
            servers = [{"url": f"https://{host}/v1", "description": "this simulator"}]
            body = dumps({**document, "servers": servers})
            if len(encoded) < 16:  # Host is client-chosen: cache the usual few, not every one
                encoded[host] = body
        return web.Response(body=body, content_type="application/json")

    app.router.add_get("/v1/openapi.json", serve)
