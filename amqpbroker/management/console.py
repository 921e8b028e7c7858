"""The management web console: the page, script and styles in `static/`, served on the
management port beside the API (`/` is the page, `/console/...` its files). The console is
a client of the `/api/...` routes only; it holds no state and reads nothing else."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


async def page(request: Request) -> Response:
    """The console's one HTML page (its views are picked by the URL's fragment)."""
    return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})


def routes() -> list[BaseRoute]:
    """The console's routes, to follow the API's so that `/api/...` keeps priority."""
    return [Route("/", page),
            Mount("/console", StaticFiles(directory=STATIC), name="console")]
