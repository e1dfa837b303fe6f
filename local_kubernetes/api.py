"""A small client of the local cluster's API server (bearer token, its CA verified)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TIMEOUT_S = 30.0


class ApiError(RuntimeError):
    def __init__(self, status: int, method: str, path: str, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Api:
    server: str  # https://address:port
    ca_file: Path
    token: str

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None,
                content_type: str = "application/json") -> dict[str, Any]:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.server + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type,
                     "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, context=context, timeout=TIMEOUT_S) as reply:
                text = reply.read()
        except urllib.error.HTTPError as exc:
            text = exc.read()
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                parsed = text.decode(errors="replace")
            raise ApiError(exc.code, method, path, parsed) from None
        try:
            return json.loads(text) if text else {}
        except json.JSONDecodeError:  # /readyz, /healthz answer plain text
            return {"text": text.decode(errors="replace")}

    def get(self, path: str) -> dict[str, Any]:
        return self.request("GET", path)

    def apply(self, path: str, manifest: Mapping[str, Any]) -> None:
        """Create `manifest` in collection `path`; one that exists already is left as it is."""
        try:
            self.request("POST", path, manifest)
        except ApiError as exc:
            if exc.status != 409:
                raise

    def ready(self) -> bool:
        try:
            return self.request("GET", "/readyz").get("text") == "ok"
        except (ApiError, urllib.error.URLError, ConnectionError, OSError, ValueError):
            return False
