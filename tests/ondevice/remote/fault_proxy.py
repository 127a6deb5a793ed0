"""A real HTTP proxy on loopback that forwards to a real server, logs every request body, and injects faults.

Modes (set `proxy.mode`): "pass" forwards; "500" / "429" answer with that status and an OpenAI-shaped error;
"slow" waits `slow_s` before forwarding (longer than the client's timeout); "cut" forwards the streamed answer,
then closes the connection after `cut_after` body chunks without ending the chunked body (a remote that dies
mid-stream).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultProxy:
    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.mode = "pass"
        self.slow_s = 5.0
        self.cut_after = 3
        self.requests: list[dict] = []  # every body the proxy received, parsed
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                self._forward(b"")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    proxy.requests.append(json.loads(body or b"{}"))
                except ValueError:
                    proxy.requests.append({"raw": body.decode(errors="replace")})
                self._forward(body)

            def _error(self, status: int) -> None:
                payload = json.dumps({"error": {"message": f"injected {status}", "type": "server_error"}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(payload)

            def _forward(self, body: bytes) -> None:
                if proxy.mode in ("500", "429"):
                    return self._error(int(proxy.mode))
                if proxy.mode == "slow":
                    time.sleep(proxy.slow_s)
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                upstream = conn.getresponse()
                self.send_response(upstream.status)
                for key, value in upstream.getheaders():
                    if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(key, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunks = 0
                try:
                    while True:
                        data = upstream.read1(65536)
                        if not data:
                            break
                        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                        self.wfile.flush()
                        chunks += 1
                        if proxy.mode == "cut" and chunks >= proxy.cut_after:
                            self.close_connection = True
                            self.connection.shutdown(2)  # no terminating chunk: the body is incomplete
                            return
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to deliver
                finally:
                    conn.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def sent_text(self) -> str:
        """Everything the remote side was sent, as one string (for 'never left the device' checks)."""
        return json.dumps(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
