"""The local status page at ``/``: a static page and its scripts, served from the
package (edge_agent/http/static: the page, its CSS, ``status.js`` for the cards and the
alarm table, ``charts.js`` for the channel charts, and uPlot 1.6.32 vendored from the
npm registry, MIT). The scripts poll /status, /readings, /summaries and /alarms, and
acknowledge with a JSON POST; nothing is loaded from outside the device, which the
Content-Security-Policy enforces. docs/agent.md, "Status page", says what it shows."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
    # uPlot positions its legend and cursor through inline styles.
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
)


def add_status_page(app: FastAPI) -> None:
    page = (STATIC / "status.html").read_text("utf-8")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def status_page() -> HTMLResponse:
        return HTMLResponse(
            page, headers={"Cache-Control": "no-store", "Content-Security-Policy": CSP}
        )
