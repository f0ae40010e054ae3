"""OData v4 test doubles: a real threaded HTTP server with server-driven paging, and page files on disk.

The server serves in-memory entity sets at ``<url>/<EntitySet>``, pages them by ``Prefer: odata.maxpagesize``
(capped by its own page size), links pages with ``@odata.nextLink`` carrying ``$skiptoken=<offset>``, honours
``$top`` as OData does (a cap on the whole result) and can be told to fail: a status, a raw body, a nextLink
loop or a delay, for every request of an entity set or only the first few.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAXPAGESIZE = re.compile(r"odata\.maxpagesize=(\d+)")


@dataclass
class Fault:
    """How the server misbehaves for an entity set."""

    status: int = 200
    body: bytes | None = None  # sent instead of the page when set
    loop: bool = False  # every nextLink points back at the first page
    delay_s: float = 0.0
    times: int | None = None  # only the first n requests of the set; None: every request
    page: int | None = None  # only the page starting at this offset; None: any page


class ODataTestServer:
    """A tiny OData v4 endpoint on 127.0.0.1 (port chosen by the OS); use as a context manager."""

    def __init__(
        self,
        entity_sets: Mapping[str, list[dict[str, Any]]],
        *,
        page_size: int = 2,
        base_path: str = "/odata",
        absolute_links: bool = False,
    ) -> None:
        self.entity_sets = dict(entity_sets)
        self.page_size = page_size
        self.base_path = base_path.rstrip("/")
        self.absolute_links = absolute_links
        self.faults: dict[str, Fault] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path with query, headers) in arrival order
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the service root, e.g. http://127.0.0.1:41234/odata."""
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.base_path}"

    def fail(self, entity_set: str, fault: Fault) -> None:
        """Make requests for an entity set misbehave as the fault says."""
        self.faults[entity_set] = fault

    def start(self) -> ODataTestServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ODataTestServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                return

        return Handler

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append((request.path, dict(request.headers.items())))
        parts = urlsplit(request.path)
        prefix = f"{self.base_path}/"
        entity_set = parts.path[len(prefix) :] if parts.path.startswith(prefix) else ""
        if entity_set not in self.entity_sets:
            self._send(request, 404, {"error": {"code": "404", "message": f"no entity set {entity_set!r}"}})
            return
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        offset = int(query.get("$skiptoken", "0"))
        fault = self._active_fault(entity_set, offset)
        if fault is not None and fault.delay_s:
            time.sleep(fault.delay_s)
        if fault is not None and (fault.status != 200 or fault.body is not None):
            self._send_raw(request, fault.status, fault.body or b'{"error": {"message": "injected"}}')
            return
        self._send(
            request,
            200,
            self._page(entity_set, offset, query, request, loop=fault is not None and fault.loop),
        )

    def _active_fault(self, entity_set: str, offset: int) -> Fault | None:
        fault = self.faults.get(entity_set)
        if fault is None or (fault.page is not None and fault.page != offset):
            return None
        with self._lock:
            if fault.times is not None:
                if fault.times <= 0:
                    return None
                fault.times -= 1
        return fault

    def _page(
        self,
        entity_set: str,
        offset: int,
        query: dict[str, str],
        request: BaseHTTPRequestHandler,
        *,
        loop: bool,
    ) -> dict[str, Any]:
        records = self.entity_sets[entity_set]
        limit = int(query["$top"]) if "$top" in query else len(records)  # OData: $top caps the whole result
        match = MAXPAGESIZE.search(request.headers.get("Prefer", ""))
        size = min(self.page_size, int(match[1])) if match else self.page_size
        end = min(offset + size, limit, len(records))
        body: dict[str, Any] = {"@odata.context": f"$metadata#{entity_set}", "value": records[offset:end]}
        if end < min(limit, len(records)) or loop:
            link = f"{entity_set}?$skiptoken={0 if loop else end}"
            if "$top" in query:
                link += f"&$top={limit}"
            body["@odata.nextLink"] = f"{self.url}/{link}" if self.absolute_links else link
        return body

    def _send(self, request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        self._send_raw(request, status, json.dumps(body).encode())

    @staticmethod
    def _send_raw(request: BaseHTTPRequestHandler, status: int, data: bytes) -> None:
        request.send_response(status)
        request.send_header("Content-Type", "application/json;odata.metadata=minimal")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
