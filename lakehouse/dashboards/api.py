"""Superset's REST API, as far as the project uses it: log in, list charts, ask a chart for its data.

Every chart of ``dashboards/`` carries a saved query context; ``POST /api/v1/chart/data`` with it
is what Superset runs for the chart (the SQL, over ``hive+lakehouse://``, to the Thrift server).
:func:`check_charts` does that for every chart: what ``lakehouse dashboard check`` prints and the
dashboards' test asserts. Standard library only (urllib): no dependency of the project's.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.cookiejar import CookieJar
from typing import Any

from lakehouse.config import Config
from lakehouse.dashboards.install import DashboardError

REQUEST_TIMEOUT_SECONDS = 300
PAGE_SIZE = 100


@dataclass(frozen=True)
class ChartResult:
    chart_id: int
    name: str
    rows: int
    error: str | None
    data: list[dict[str, Any]]


class Client:
    """A logged-in API session (bearer token, and the CSRF token with its session cookie)."""

    def __init__(self, base_url: str, user: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        credentials = {"username": user, "password": password, "provider": "db", "refresh": False}
        login = self.call("POST", "/api/v1/security/login", credentials)
        self.token = login["access_token"]
        self.csrf = self.call("GET", "/api/v1/security/csrf_token/")["result"]

    def _request(self, method: str, path: str, body: Any = None) -> bytes:
        headers = {"Content-Type": "application/json", "Referer": self.base_url}
        if getattr(self, "token", None):
            headers["Authorization"] = f"Bearer {self.token}"
        if getattr(self, "csrf", None):
            headers["X-CSRFToken"] = self.csrf
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with self.opener.open(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise DashboardError(f"Superset answered {exc.code} to {method} {path}: {detail}") from None
        except OSError as exc:
            raise DashboardError(
                f"cannot reach Superset at {self.base_url} ({exc}): is `lakehouse dashboard up` running?"
            ) from None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """A JSON request and its JSON answer; DashboardError with Superset's message otherwise."""
        return json.loads(self._request(method, path, body) or b"null")

    def download(self, path: str) -> bytes:
        return self._request("GET", path)

    def charts(self) -> list[dict[str, Any]]:
        """Every chart: id, slice_name, viz_type, uuid (the list leaves query contexts out)."""
        columns = ["id", "slice_name", "viz_type", "uuid"]
        out, page = [], 0
        while True:
            query = f"(columns:!({','.join(columns)}),page:{page},page_size:{PAGE_SIZE})"
            result = self.call("GET", f"/api/v1/chart/?q={query}")["result"]
            out += result
            if len(result) < PAGE_SIZE:
                return out
            page += 1

    def dashboards(self) -> list[dict[str, Any]]:
        return self.call("GET", "/api/v1/dashboard/?q=(columns:!(id,dashboard_title,slug),page_size:100)")["result"]

    def chart_data(self, chart: dict[str, Any], filters: list[dict[str, Any]] | None = None) -> ChartResult:
        """The chart's saved query context, run by Superset: rows, or the error it shows.

        ``filters`` (``{"col": ..., "op": "IN", "val": [...]}``) are added as a dashboard's native
        filters add theirs: to every query's filters and to the form data's ``extra_form_data``."""
        saved = self.call("GET", f"/api/v1/chart/{chart['id']}")["result"]
        context = json.loads(saved.get("query_context") or "null")
        if not context:
            return ChartResult(chart["id"], chart["slice_name"], 0, "no saved query context", [])
        if filters:
            for query in context.get("queries") or []:
                query["filters"] = [*(query.get("filters") or []), *filters]
            form_data = context.setdefault("form_data", {})
            form_data["extra_form_data"] = {**(form_data.get("extra_form_data") or {}), "filters": filters}
        try:
            answer = self.call("POST", "/api/v1/chart/data", context)
        except DashboardError as exc:
            return ChartResult(chart["id"], chart["slice_name"], 0, str(exc), [])
        results = answer.get("result") or []
        errors = [r.get("error") for r in results if r.get("error")]
        data = [row for r in results for row in (r.get("data") or [])]
        return ChartResult(chart["id"], chart["slice_name"], len(data), errors[0] if errors else None, data)


def client(config: Config) -> Client:
    from lakehouse.dashboards.superset import admin_password

    return Client(config.dashboard.url, config.dashboard.admin_user, admin_password(config))


def check_charts(config: Config) -> list[ChartResult]:
    """Every chart's data through the chart-data API, in chart id order."""
    session = client(config)
    return [session.chart_data(chart) for chart in sorted(session.charts(), key=lambda c: c["id"])]
