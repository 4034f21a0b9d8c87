"""A small fault-injecting TCP proxy for tests: sits between a client and a loopback server (SeaweedFS S3)
and, per request, resets the connection, stalls it, or cuts the response mid-body.

Written for the tests because what it must do is tiny and specific (a few faults at the TCP level, seeded,
counted, bounded in time) and the chaos tools that do this (toxiproxy, tc netem) are not installable here
or need root.

A "request" is detected without parsing HTTP: client bytes that arrive after the server last spoke start
a new request (HTTP/1.1 keep-alive sends one request, then waits for the response). Each request draws
its fate from a seeded RNG:

    reset   the client's socket is closed with RST (SO_LINGER 0) before the request reaches the server
    stall   the request is held for `stall_seconds` before it is forwarded (bounded: below client timeouts)
    cut     the response is forwarded up to a random byte count, then both sockets are reset (mid-body)
    ok      forwarded untouched

`hold(request_head) -> seconds` (optional) can hold chosen requests longer, e.g. a manifest PUT, so a test
can act while a commit is in flight. Binds 127.0.0.1 only. `stop()` closes everything; `counts` says what was injected.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class FaultCounts:
    connections: int = 0
    requests: int = 0
    resets: int = 0
    stalls: int = 0
    cuts: int = 0

    @property
    def injected(self) -> int:
        return self.resets + self.stalls + self.cuts


@dataclass
class FaultPlan:
    reset: float = 0.05
    stall: float = 0.02
    cut: float = 0.03
    stall_seconds: float = 2.0
    cut_max_bytes: int = 40_000  # a cut lands somewhere in the first this many response bytes
    seed: int = 13


@dataclass
class _Conn:
    client: socket.socket
    upstream: socket.socket
    server_spoke: bool = True  # so the first client bytes start a request
    cut_after: int = -1  # response bytes still allowed through, -1 = no cut pending
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def _rst(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    def __init__(self, upstream_port: int, plan: FaultPlan | None = None,
                 hold: Callable[[bytes], float] | None = None):
        self.upstream_port = upstream_port
        self.hold = hold
        self.plan = plan or FaultPlan()
        self.enabled = True
        self.counts = FaultCounts()
        self._rng = random.Random(self.plan.seed)
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = int(self._listener.getsockname()[1])
        self._conns: list[_Conn] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="faultproxy", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _draw(self) -> str:
        with self._lock:
            self.counts.requests += 1
            if not self.enabled:
                return "ok"
            x = self._rng.random()
            p = self.plan
            if x < p.reset:
                self.counts.resets += 1
                return "reset"
            if x < p.reset + p.stall:
                self.counts.stalls += 1
                return "stall"
            if x < p.reset + p.stall + p.cut:
                self.counts.cuts += 1
                return "cut"
            return "ok"

    def _cut_bytes(self) -> int:
        with self._lock:
            return self._rng.randint(1, self.plan.cut_max_bytes)

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                _rst(client)
                continue
            conn = _Conn(client, upstream)
            with self._lock:
                self.counts.connections += 1
                self._conns.append(conn)
            threading.Thread(target=self._client_to_server, args=(conn,), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(conn,), daemon=True).start()

    def _close(self, conn: _Conn, reset: bool) -> None:
        with conn.lock:
            if conn.closed:
                return
            conn.closed = True
        for s in (conn.client, conn.upstream):
            if reset:
                _rst(s)
            else:
                with contextlib.suppress(OSError):
                    s.close()

    def _client_to_server(self, conn: _Conn) -> None:
        try:
            while True:
                data = conn.client.recv(65536)
                if not data:
                    break
                if conn.server_spoke:
                    conn.server_spoke = False
                    held = self.hold(data[:2048]) if self.hold is not None and self.enabled else 0.0
                    if held > 0 and self._stop.wait(held):
                        break
                    fate = self._draw()
                    if fate == "reset":
                        self._close(conn, reset=True)
                        return
                    if fate == "stall":
                        if self._stop.wait(self.plan.stall_seconds):
                            break
                    elif fate == "cut":
                        conn.cut_after = self._cut_bytes()
                conn.upstream.sendall(data)
        except OSError:
            pass
        self._close(conn, reset=False)

    def _server_to_client(self, conn: _Conn) -> None:
        try:
            while True:
                data = conn.upstream.recv(65536)
                if not data:
                    break
                if conn.cut_after >= 0:
                    if len(data) >= conn.cut_after:
                        conn.client.sendall(data[: conn.cut_after])
                        time.sleep(0.01)  # let the partial bytes leave before the RST
                        self._close(conn, reset=True)
                        return
                    conn.cut_after -= len(data)
                conn.server_spoke = True
                conn.client.sendall(data)
        except OSError:
            pass
        self._close(conn, reset=False)

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(timeout=2)
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            self._close(conn, reset=False)
