"""The one HTTP server on a real loopback socket that every fake in the tests runs on: it records
what it received and answers from routes the test (or a fake upstream) sets up."""

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict  # lower-case names
    body: bytes

    @property
    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class FakeServer:
    """`routes[path] = handler_function(request_handler)`; subclasses override `dispatch`.
    Every request is recorded in `received` (unless `record` is off)."""

    def __init__(self, port=0):
        self.routes = {}
        self.received = []
        self.record = True  # off when a fake runs on its own, so memory does not grow without end
        self.lock = threading.RLock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_request(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                if server.record:
                    with server.lock:
                        server.received.append(request)
                try:
                    server.dispatch(self, request)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test) or the route dropped it on purpose

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_request

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll: shutting down waits for the loop's next turn (0.5 s by default, per server).
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def dispatch(self, handler, request):
        route = self.routes.get(request.path.split("?")[0])
        if route is None:
            handler.send_error(404)
        else:
            route(handler)


def send_bytes(data, content_type="image/png", status=200):
    def route(handler):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return route
