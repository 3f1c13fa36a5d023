"""The browser dashboard: server-rendered pages (aiohttp-jinja2), htmx and uPlot vendored
under web/static, live updates over Server-Sent Events (aiohttp-sse).

Every state change the dashboard makes goes through the /api/v1 handlers themselves (the
browser sends JSON with its session cookie and CSRF token), so the guards and the audit
log are the API's; only the CSV import flow has its own handlers, over the same import
engine."""
