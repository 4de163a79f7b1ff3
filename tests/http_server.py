"""A throwaway HTTP server on 127.0.0.1 for download tests: no network needed."""
from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path


class Server:
    """Serves `root` on a free port of 127.0.0.1 and records the path of every GET it answers."""

    def __init__(self, root: Path) -> None:
        requests: list[str] = []
        self.requests = requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
