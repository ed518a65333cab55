"""Local HTTP servers standing in for the listener's backend servers: each answers with its name."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # health checks and probes hang up early; that is not an error worth printing


def _handler(body: bytes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, with_body: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(True)

        def do_HEAD(self) -> None:
            self._answer(False)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class Backend:
    """One backend server (threads of this process: it ends when the rehearsal does)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self._server: _QuietServer | None = None
        self.start()

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Serve (again, on the same port after `stop`)."""
        if self._server is None:
            self._server = _QuietServer(("127.0.0.1", self.port), _handler(f"backend {self.name}\n".encode()))
            self.port = self._server.server_address[1]
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
