"""The web app's pages: ``/`` and ``/station`` (sorting station), ``/search`` (catalogue search),
``/trends`` (trends). Plain HTML + vanilla JS + CSS from ``fashionlens/service/static/`` (served at
``/static``); every asset is local: the Content-Security-Policy allows this origin only, so a page
cannot load anything from a CDN. The pages need no API key to load; their calls to ``/v1/...`` send
the key the user typed (kept in the browser's local storage) when auth is on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

#: the packaged web app files (HTML, JS, CSS)
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

#: page path → HTML file in :data:`STATIC_DIR`
PAGES: dict[str, str] = {"/": "station.html", "/station": "station.html", "/search": "search.html",
                         "/trends": "trends.html"}

#: only this origin; pictures also from blob:/data: URLs (the photos being sorted, masks drawn in the page)
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


def _page(file_name: str) -> Any:
    async def page() -> HTMLResponse:
        return HTMLResponse((STATIC_DIR / file_name).read_text("utf-8"), headers=PAGE_HEADERS)

    return page


for _path, _file in PAGES.items():
    router.add_api_route(_path, _page(_file), methods=["GET"], response_class=HTMLResponse)
