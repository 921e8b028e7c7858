"""The console's files on the management app, without a browser: the page at `/` and
its files under `/console/` served without credentials, and the API's routes and error
shapes unchanged beside them."""

from __future__ import annotations

from support.management import management


async def test_the_page_and_its_files_are_served_without_credentials() -> None:
    async with management() as (_, api):
        page = await api.get("/", auth=None)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert 'src="console/console.js"' in page.text
        for path, kind in (("/console/console.js", "javascript"), ("/console/console.css", "css"),
                           ("/console/favicon.svg", "svg")):
            response = await api.get(path, auth=None)
            assert response.status_code == 200, path
            assert kind in response.headers["content-type"], path


async def test_the_api_keeps_its_routes_and_error_shapes() -> None:
    async with management() as (_, api):
        assert (await api.get("/api/overview", auth=None)).status_code == 401
        assert (await api.get("/api/whoami")).json()["name"] == "guest"
        missing = await api.get("/console/nothing-here.js", auth=None)
        assert missing.status_code == 404
        assert missing.json() == {"error": "Object Not Found", "reason": "Not Found"}
        assert (await api.get("/nothing-here", auth=None)).status_code == 404
        assert (await api.post("/", auth=None)).status_code == 405
