"""An in-process HTTP peer for the engines that talk to a server: a threading server bound to a
free port on 127.0.0.1, serving a handler class that reads its state from ``handler.state``."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler], state: Any) -> Iterator[int]:
    """Serve ``handler`` (given ``state`` as its class attribute) until the block ends; yields the port."""
    httpd = Server(("127.0.0.1", 0), type("BoundHandler", (handler,), {"state": state}))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
