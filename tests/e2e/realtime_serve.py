"""`python tests/e2e/realtime_serve.py serve ...`: `csmstream serve`, with `/v1/realtime` included when the app
does not route it yet (until `create_app` includes `server.realtime.router`, this is how the tests reach it).
Everything else (flags, settings from `CSMSTREAM_*`, the announced address) is the real command's."""

from __future__ import annotations

import sys

import csmstream.server.app as app_module
from csmstream import cli
from csmstream.server import realtime

_create_app = app_module.create_app


def _create_app_with_realtime(*args, **kwargs):
    app = _create_app(*args, **kwargs)
    if not any(getattr(route, "path", None) == "/v1/realtime" for route in app.routes):
        app.include_router(realtime.router)
    return app


if __name__ == "__main__":
    app_module.create_app = _create_app_with_realtime  # `serve` imports it when it runs
    sys.exit(cli.main(sys.argv[1:]))
