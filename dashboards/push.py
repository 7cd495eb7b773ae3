"""Push the dashboards to an existing Grafana through its HTTP API (``/api/folders``,
``/api/dashboards/db``), with a service-account token from the environment.

Plain httpx rather than grafana-client: grafana-client pulls urllib3-future, which replaces the
``urllib3`` package on disk under Airflow; the three calls needed here do not justify that risk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from dashboards.build import FOLDER, all_dashboards


class GrafanaError(RuntimeError):
    pass


@dataclass(frozen=True)
class Pushed:
    uid: str
    version: int
    url: str


def _check(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 300:
        raise GrafanaError(f"Grafana refused {what}: HTTP {response.status_code} {response.text.strip()[:300]}")
    return response.json()


def folder_uid(client: httpx.Client, title: str) -> str:
    """The uid of the folder titled ``title``, created if missing."""
    for folder in _check(client.get("/api/folders"), "listing folders"):
        if folder.get("title") == title:
            return str(folder["uid"])
    created = _check(client.post("/api/folders", json={"title": title}), f"creating folder {title!r}")
    return str(created["uid"])


def push(
    url: str, token: str, timezone: str, folder: str = FOLDER, overwrite: bool = True, timeout_s: float = 30.0
) -> list[Pushed]:
    """Create or update every dashboard, in the park's ``timezone``, in ``folder``; ``overwrite`` False
    refuses to replace one changed in Grafana."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s) as client:
        uid = folder_uid(client, folder)
        pushed = []
        for dash_uid, model in all_dashboards(timezone).items():
            body = {
                "dashboard": model | {"id": None},
                "folderUid": uid,
                "overwrite": overwrite,
                "message": "parkcarbon dashboards push",
            }
            answer = _check(client.post("/api/dashboards/db", json=body), f"dashboard {dash_uid}")
            pushed.append(Pushed(str(answer["uid"]), int(answer["version"]), str(answer["url"])))
    return pushed
