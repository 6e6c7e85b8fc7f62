"""The HTTP front door: Supabase's edge (apikey check) + routing + fault injection.

A stdlib ThreadingHTTPServer speaking HTTP/1.1 with keep-alive: it gives full control over the
socket, which real faults need (RST via SO_LINGER 0, hangs, a closed listening socket).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import struct
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from .faults import Action, FaultInjector
from .http_types import Request, Response

log = logging.getLogger(__name__)

Handler = Callable[[Request], Response]
MAX_BODY = 64 * 1024 * 1024  # above Storage's 50 MB global object limit
_TOKEN_RE = re.compile(r"((?:token|apikey)=)[^&\s\"]+")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    gateway: Gateway


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.1"  # so even garbage gets a status line, not an HTTP/0.9 body
    timeout = 120  # idle keep-alive connections of forgotten clients end instead of pinning a thread
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        # signed-URL tokens travel in the query string: never log them
        log.debug("%s - %s", self.address_string(), _TOKEN_RE.sub(r"\1***", format % args))

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in one segment; without this, delayed ACKs cost ~40 ms a request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.gateway._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.gateway._track(self.connection, add=False)

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _read_exact(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if len(data) != n:  # the client hung up mid-body: never act on a truncated request
            raise ConnectionError("request body shorter than announced")
        return data

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                total += size
                if size < 0 or total > MAX_BODY:
                    raise ValueError("chunked body too large")
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self._read_exact(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise ValueError(f"Content-Length {length} out of range")
        return self._read_exact(length) if length > 0 else b""

    def _handle(self) -> None:
        gw = self.server.gateway
        raw_path, _, query = self.path.partition("?")
        try:
            body = self._read_body()
        except ValueError:  # a broken Content-Length or chunk size: answer, then drop the connection
            self.close_connection = True
            self._send(Response.json(400, {"message": "Bad request body framing"}, [("Connection", "close")]))
            return
        except OSError:
            self.close_connection = True
            return
        headers: dict[str, str] = {}
        for k, v in self.headers.items():  # repeated headers (e.g. two Prefer lines) form one list
            name = k.lower()
            headers[name] = f"{headers[name]}, {v}" if name in headers else v
        req = Request(self.command, unquote(raw_path), query, headers, body)
        if raw_path == "/_faults":
            self._send(gw.control(req))
            return
        action = gw.faults.decide(self.command, raw_path)
        if action is not None and self._pre_fault(action, raw_path):
            return
        resp = gw.route(req)
        if action is not None and action.kind == "commit_then_fail":
            resp = gw.fault_response(Action(kind="status", status=action.status), raw_path)
        self._send(resp)

    def _pre_fault(self, action: Action, raw_path: str) -> bool:
        """Apply a fault that replaces the request; True when the request must not be served."""
        gw = self.server.gateway
        if action.kind == "reset":
            self._reset()
            return True
        if action.kind == "hang":
            gw.faults.wait_hang(action.seconds)
            if action.then == "drop":
                self._reset()
                return True
            return False
        if action.kind == "status":
            self._send(gw.fault_response(action, raw_path))
            return True
        return False

    def _reset(self) -> None:
        """Close with SO_LINGER 0: the peer gets a TCP RST and no response at all."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _send(self, resp: Response) -> None:
        try:
            self.send_response(resp.status)
            names = {k.lower() for k, _ in resp.headers}
            for k, v in resp.headers:
                self.send_header(k, v)
            if "content-length" not in names:
                self.send_header("Content-Length", str(len(resp.body)))
            self._headers_buffer.append(b"\r\n")
            if self.command != "HEAD" and resp.body:
                self._headers_buffer.append(resp.body)
            self.wfile.write(b"".join(self._headers_buffer))
            self._headers_buffer = []
        except OSError:
            self.close_connection = True


class Gateway:
    """Owns the listening socket; ``faults`` can close and reopen it (an outage)."""

    def __init__(
        self,
        port: int,
        rest: Handler,
        storage: Handler,
        faults: FaultInjector,
        api_keys: set[str],
        service_key: str,
        opaque_keys: dict[str, str] | None = None,
    ) -> None:
        self.port = port
        self.rest = rest
        self.storage = storage
        self.faults = faults
        self.opaque_keys = dict(opaque_keys or {})  # sb_secret_/sb_publishable_ key → the JWT it stands for
        self.api_keys = set(api_keys) | set(self.opaque_keys)
        self.service_key = service_key
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._holder: socket.socket | None = None
        self._lock = threading.Lock()
        faults.bind_outage(self._outage_start, self._outage_end)

    # ----- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        server = _Server(("127.0.0.1", self.port), _RequestHandler)
        server.gateway = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"gateway:{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._cut_connections()

    def _outage_start(self) -> None:
        self.stop()
        # Hold the port with a bound socket that does not listen: connections are refused (RST)
        # and no other process can take the port before the outage ends.
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(("127.0.0.1", self.port))
        except OSError:
            holder.close()
            log.warning("gateway: could not hold port %s during the outage", self.port)
        else:
            self._holder = holder

    def _outage_end(self) -> None:
        if self._holder is not None:
            self._holder.close()
            self._holder = None
        if self._server is None:
            self.start()

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def _cut_connections(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # ----- routing -----------------------------------------------------------------------
    def route(self, req: Request) -> Response:
        try:
            req = self._translate_opaque_key(req)
            if req.path.startswith("/rest/v1"):
                denied = self._edge_check(req)
                if denied is not None:
                    return denied
                return self.rest(_strip(req, "/rest/v1"))
            if req.path.startswith("/storage/v1"):
                return self.storage(_strip(req, "/storage/v1"))
            return Response.json(404, {"message": "no Route matched with those values"})
        except Exception:  # a bug in the emulator: answer like a crashed upstream, keep serving
            log.exception("gateway: unhandled error for %s %s", req.method, req.path)
            return Response.json(
                500, {"message": "An invalid response was received from the upstream server"}
            )

    def _translate_opaque_key(self, req: Request) -> Request:
        """Supabase's edge turns the new opaque API keys into a role JWT for the services behind it.

        The key stands in for the bearer only when no other token is given (``Authorization``
        absent or equal to the key); a user's JWT in ``Authorization`` passes through.
        """
        key = req.header("apikey")
        jwt = self.opaque_keys.get(key or "")
        if jwt is None or req.bearer() not in (None, key):
            return req
        return Request(
            req.method, req.path, req.query, {**req.headers, "authorization": f"Bearer {jwt}"}, req.body
        )

    def _edge_check(self, req: Request) -> Response | None:
        """Supabase's API gateway: an ``apikey`` of this project is required for the REST API."""
        key = req.header("apikey")
        if key is None:
            return Response.json(
                401,
                {
                    "message": "No API key found in request",
                    "hint": "No `apikey` request header or url param was found.",
                },
            )
        if key not in self.api_keys:
            return Response.json(
                401,
                {
                    "message": "Invalid API key",
                    "hint": "Double check your Supabase `anon` or `service_role` API key.",
                },
            )
        return None

    def fault_response(self, action: Action, raw_path: str) -> Response:
        """An injected failure looks like one from the infrastructure in front of the services:
        a plain-text body, so the clients report the HTTP status itself (postgrest's APIError
        code "503", storage3's StorageApiError status 503)."""
        headers = [("Content-Type", "text/plain; charset=utf-8")]
        if action.retry_after is not None:
            headers.append(("Retry-After", str(action.retry_after)))
        try:
            reason = HTTPStatus(action.status).phrase
        except ValueError:  # a status Python has no name for
            reason = "Error"
        return Response(action.status, f"injected fault: {action.status} {reason}".encode(), headers)

    def control(self, req: Request) -> Response:
        """``POST /_faults`` with the service_role key: the fault API for subprocess stacks."""
        if req.bearer() != self.service_key and req.header("apikey") != self.service_key:
            return Response.json(401, {"message": "the service_role key is required"})
        if req.method == "GET":
            return Response.json(200, self.faults.apply_command({"op": "status"}))
        try:
            cmd = json.loads(req.body or b"{}")
            if not isinstance(cmd, dict):
                raise ValueError("the body must be a JSON object")
            return Response.json(200, self.faults.apply_command(cmd))
        except (ValueError, TypeError) as e:
            return Response.json(400, {"message": str(e)})


def _strip(req: Request, prefix: str) -> Request:
    return Request(req.method, req.path[len(prefix) :] or "/", req.query, req.headers, req.body)
