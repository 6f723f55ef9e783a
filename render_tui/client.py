"""Talking to renderd nodes over their sockets, from any machine that sees the spool."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields, replace
from typing import Any

from renderd.infofiles.records import NodeRecord


class NodeUnreachable(Exception):
    """The node's socket did not answer (or answered with an error)."""


def request(address: str, path: str, token: str | None = None, method: str = "GET", timeout: float = 2.0) -> Any:
    """One HTTP request to a node; the decoded JSON answer (or text)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(address.rstrip("/") + path, method=method, headers=headers,
                                 data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            body = response.read()
            kind = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        raise NodeUnreachable(f"{address}{path}: {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        raise NodeUnreachable(f"{address}: {reason}") from None
    return json.loads(body) if "json" in kind else body.decode("utf-8", "replace")


def live_records(records: list[NodeRecord], token: str | None = None, timeout: float = 0.7) -> list[NodeRecord]:
    """The node files brought up to date by each node's /status, asked all at once.

    A node that answers gives its live figures; one whose port refuses the connection is offline
    (its daemon is gone, whatever its node file says); one that does not answer in time keeps what
    its node file says. `token` lets private nodes answer.
    """
    names = {f.name for f in fields(NodeRecord)}

    def ask(record: NodeRecord) -> NodeRecord:
        if not record.address or record.state == "offline":
            return record
        try:
            answer = request(record.address, "/status", token=token, timeout=timeout)
        except NodeUnreachable as error:
            return replace(record, state="offline") if "refused" in str(error).lower() else record
        if not isinstance(answer, dict) or answer.get("pid") != record.pid:
            return record
        try:
            return NodeRecord(**{k: v for k, v in answer.items() if k in names})
        except TypeError:
            return record

    if not records:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(records))) as pool:
        return list(pool.map(ask, records))


def tell(record: NodeRecord, command: str, token: str, job: str | None = None) -> None:
    """Send a control command to one node; raises NodeUnreachable."""
    if not record.address:
        raise NodeUnreachable(f"node {record.name} has no socket")
    path = f"/{command}" + (f"?job={urllib.request.quote(job)}" if job else "")
    request(record.address, path, token=token, method="POST")
