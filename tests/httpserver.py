"""A small HTTP file server on 127.0.0.1 for the remote-input tests: Range requests, ETag and
Last-Modified, byte counting, and injected faults (503 answers, dropped connections, a server
that stays down).

It runs in a child process: rasterio holds Python's GIL while GDAL opens a dataset, so a server
thread in the test's own process would never answer. The test drives it over HTTP
(``/_faults?...``, ``/_requests``, ``/_reset``)::

    with RangeServer(folder) as server:
        url = server.url("scene.tif")
        server.set_faults(fail_first=2)
        ...
        server.body_bytes()      # bytes of file content sent so far
"""

from __future__ import annotations

import email.utils
import json
import re
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
START_TIMEOUT = 20.0
"""Seconds to wait for the child process to say its port."""


@dataclass
class Faults:
    """What the server does wrong. ``fail_first``: answer that many file requests with
    ``status``; ``drop_every``: on every n-th Range request (``drop_limit`` times at most),
    send half the body promised and close the connection; ``down_after``: answer every file
    request after that many with ``status``."""

    fail_first: int = 0
    drop_every: int = 0
    drop_limit: int = 1_000_000
    down_after: int | None = None
    status: int = 503


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    status: int
    sent: int
    """Bytes of file content sent (less than asked for on a dropped connection)."""


class RangeServer:
    """Serves the files of ``root`` at ``http://127.0.0.1:PORT/NAME`` from a child process.
    Use as a context manager."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._process: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> RangeServer:
        self._process = subprocess.Popen(
            [sys.executable, __file__, str(self.root)], stdout=subprocess.PIPE, text=True
        )
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self._process.stdout.readline()))
        reader.start()
        reader.join(START_TIMEOUT)
        if not line or not line[0].strip().isdigit():
            self.__exit__(None, None, None)
            raise RuntimeError(f"the test HTTP server did not start within {START_TIMEOUT} s")
        self.port = int(line[0])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
            self._process.stdout.close()  # type: ignore[union-attr]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def _control(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url(path), timeout=10) as answer:
            return answer.read()

    def set_faults(self, **faults: object) -> None:
        """Replace the faults (see :class:`Faults`; none given: a healthy server again)."""
        self._control("_faults?" + urllib.parse.urlencode(faults))

    def requests(self) -> list[Request]:
        """The file requests served since the start (or :meth:`reset`)."""
        return [Request(**r) for r in json.loads(self._control("_requests"))]

    def body_bytes(self) -> int:
        """Bytes of file content sent since the start (or :meth:`reset`)."""
        return sum(r.sent for r in self.requests())

    def reset(self) -> None:
        """Forget the requests counted so far."""
        self._control("_reset")


@dataclass
class _State:
    faults: Faults = field(default_factory=Faults)
    requests: list[Request] = field(default_factory=list)
    range_requests: int = 0
    drops: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root: Path
    state: _State

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        if self.path.startswith("/_"):
            return self._control()
        self._serve(body=True)

    def _control(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        answer = b"{}"
        with self.state.lock:
            if url.path == "/_faults":
                query = dict(urllib.parse.parse_qsl(url.query))
                self.state.faults = Faults(**{k: int(v) for k, v in query.items()})
                self.state.drops = 0
            elif url.path == "/_requests":
                answer = json.dumps([asdict(r) for r in self.state.requests]).encode()
            elif url.path == "/_reset":
                self.state.requests.clear()
                self.state.range_requests = self.state.drops = 0
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def _serve(self, body: bool) -> None:
        asked = self.headers.get("Range")
        with self.state.lock:
            faults = self.state.faults
            count = len(self.state.requests)
            down = faults.down_after is not None and count >= faults.down_after
            failing = down or count < faults.fail_first
            drop = False
            if asked and not failing:
                self.state.range_requests += 1
                every = faults.drop_every
                drop = bool(every) and self.state.range_requests % every == 0
                drop = drop and self.state.drops < faults.drop_limit
                self.state.drops += drop
        if failing:
            return self._answer(faults.status, asked)
        path = self.root / urllib.parse.unquote(self.path.lstrip("/").split("?")[0])
        if not self.path.strip("/") or not path.is_file():
            return self._answer(404, asked)
        stat = path.stat()
        size = stat.st_size
        start, end = 0, size - 1
        status = 200
        if asked:
            match = RANGE.match(asked.strip())
            if match is None or not (match[1] or match[2]):  # several ranges: not served
                return self._answer(416, asked)
            if match[1]:
                start = int(match[1])
                end = min(int(match[2]), size - 1) if match[2] else size - 1
            else:
                start = max(0, size - int(match[2]))
            if start >= size or start > end:
                return self._answer(416, asked, {"Content-Range": f"bytes */{size}"})
            status = 206
        length = end - start + 1
        data = b""
        if body:
            with path.open("rb") as f:
                f.seek(start)
                data = f.read(length)
            if drop:
                data = data[: len(data) // 2]
        # Recorded before the answer, so that a client done with it finds it in the log.
        self._record(status, asked, len(data))
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{stat.st_mtime_ns:x}-{size:x}"')
        self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body:
            self.wfile.write(data)
            self.wfile.flush()
            if drop:  # the connection dies mid-transfer
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

    def _answer(self, status: int, asked: str | None, headers: dict | None = None) -> None:
        self._record(status, asked, 0)  # before the answer, as in _serve
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _record(self, status: int, asked: str | None, sent: int) -> None:
        with self.state.lock:
            self.state.requests.append(Request(self.command, self.path, asked, status, sent))


def serve(root: Path) -> None:
    """Serve ``root`` until terminated; the port is the first line on stdout."""
    handler = type("Handler", (_Handler,), {"root": root, "state": _State()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
