"""OpenBao's HTTP API, as the harness calls it (with the root token)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def bao_request(addr: str, token: str, method: str, path: str, body: object = None) -> Any:
    """One OpenBao HTTP API call; returns the decoded JSON body (or None)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - the local OpenBao
        f"{addr}/v1/{path}", data=data, method=method, headers={"X-Vault-Token": token}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        text = resp.read()
    return json.loads(text) if text else None
