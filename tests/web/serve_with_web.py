"""`csmstream serve`, with the web demo and access control wired in when `create_app` does not do it yet.

TEMPORARY: once `create_app` calls `mount_web` and `install_access_control` itself, this only runs the real
command (it detects the demo's routes and changes nothing). Usage: `python serve_with_web.py serve ...`.
"""

from __future__ import annotations

import sys

from csmstream import cli
from csmstream.server import app as app_module
from csmstream.server.auth import DEFAULT_PUBLIC_PATHS, install_access_control
from csmstream.web import mount_web

_create_app = app_module.create_app


def create_app_with_web(settings, *args, **kwargs):
    app = _create_app(settings, *args, **kwargs)
    if not any(getattr(route, "path", None) == "/speak.html" for route in app.routes):
        app.user_middleware.clear()  # the app's own key check would hide the pages
        public_paths = (*DEFAULT_PUBLIC_PATHS, *mount_web(app))
        install_access_control(app, settings, public_paths)
    return app


app_module.create_app = create_app_with_web

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
