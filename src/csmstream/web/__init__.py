"""The web demo: static pages (Speak, Talk, Voices) that speak the server's own protocols from a browser.

Plain HTML, CSS and ES modules, no build step. `mount_web(app)` serves the pages at `/`, `/speak.html`,
`/talk.html`, `/voices.html` and their files under `/assets/`. The pages use relative links, so they also
work when mounted under a prefix; they call the API at the origin's root (`/v1/...`, `/health`).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parent
ASSETS_DIR = WEB_DIR / "assets"
# URL path → page file; `/` is the Speak page itself (a redirect would cost phones a round trip)
PAGES = {
    "/": "speak.html",
    "/index.html": "speak.html",
    "/speak.html": "speak.html",
    "/talk.html": "talk.html",
    "/voices.html": "voices.html",
}
# what `ApiKeyMiddleware(public_paths=...)` must leave open so a browser can load the demo before it has
# a key (the pages hold no secret; every API call they make still needs one)
WEB_PUBLIC_PATHS = (*PAGES, "/assets/*")
# pages are small and change with the server: always revalidate, never serve a stale copy
NO_CACHE = {"Cache-Control": "no-cache"}


def _page_endpoint(file_name: str):
    path = WEB_DIR / file_name

    async def page(request: Request) -> FileResponse:
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=NO_CACHE)

    page.__name__ = f"web_{path.stem}"
    return page


def mount_web(app) -> tuple[str, ...]:
    """Serve the demo on a Starlette/FastAPI app; returns the paths to keep public (`WEB_PUBLIC_PATHS`).

    Add it after the API routes: they keep their paths, and the demo only takes the ones listed here."""
    for url_path, file_name in PAGES.items():
        assert (WEB_DIR / file_name).is_file(), f"the web demo is missing {file_name} (broken install?)"
        app.add_route(url_path, _page_endpoint(file_name), methods=["GET", "HEAD"], include_in_schema=False)
    app.mount("/assets", StaticFiles(directory=ASSETS_DIR), name="web-assets")
    return WEB_PUBLIC_PATHS
