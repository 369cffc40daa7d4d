"""A bounded load client for a local ``cnnlab serve``: the load test's and the benchmark's.

A fixed number of requests from a fixed number of keep-alive connections (one thread each,
standard-library ``http.client``, so the client costs little of the CPU the server needs), with
a deadline for the whole run: it always stops by itself. Only loopback servers are accepted.
"""

from __future__ import annotations

import http.client
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.serve.server import is_loopback


@dataclass(frozen=True)
class LoadResult:
    """Latencies (seconds) of the answered requests, the errors, and the run's wall time."""

    latencies: tuple[float, ...]
    errors: tuple[str, ...]
    seconds: float
    connections: int
    statuses: dict[int, int] = field(default_factory=dict)

    def percentile(self, q: float) -> float:
        """Latency percentile ``q`` (0..100) in milliseconds."""
        return float(np.percentile(np.array(self.latencies), q) * 1000.0)

    @property
    def throughput(self) -> float:
        """Answered requests per second over the whole run."""
        return len(self.latencies) / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (
            f"{len(self.latencies)} requests, {len(self.errors)} errors, {self.connections} "
            f"connections: p50 {self.percentile(50):.1f} ms, p95 {self.percentile(95):.1f} ms, "
            f"p99 {self.percentile(99):.1f} ms, {self.throughput:.0f} requests/s"
        )


def multipart(files: list[tuple[str, bytes, str]], fields: dict[str, str]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body: ``(name, bytes, type)`` files as ``file``, and fields."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(f"{head}{value}\r\n".encode())
    for name, data, kind in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"'
            f"\r\nContent-Type: {kind}\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def load_test(
    url: str,
    body: bytes,
    content_type: str,
    *,
    requests: int = 500,
    connections: int = 8,
    deadline: float = 120.0,
) -> LoadResult:
    """POSTs ``body`` to ``url`` ``requests`` times from ``connections`` threads.

    A request counts as an error unless it is answered 200; requests not sent before
    ``deadline`` seconds count as errors too, so the result always accounts for all of them.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not is_loopback(parts.hostname):
        raise CnnlabError(f"{url}: the load client only sends to http://127.0.0.1 (loopback)")
    host, port, path = parts.hostname, parts.port or 80, parts.path or "/"
    headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
    lock = threading.Lock()
    issued = 0
    latencies: list[float] = []
    errors: list[str] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    stop_at = time.monotonic() + deadline

    def take() -> bool:
        nonlocal issued
        with lock:
            if issued >= requests or time.monotonic() > stop_at:
                return False
            issued += 1
            return True

    def worker() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=min(deadline, 30.0))
        try:
            while take():
                sent = time.perf_counter()
                try:
                    connection.request("POST", path, body=body, headers=headers)
                    response = connection.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException) as error:
                    connection.close()  # reconnects on the next request
                    with lock:
                        errors.append(f"{type(error).__name__}: {error}")
                    continue
                elapsed = time.perf_counter() - sent
                with lock:
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                    if response.status == 200:
                        latencies.append(elapsed)
                    else:
                        errors.append(f"HTTP {response.status}")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, stop_at - time.monotonic()) + 35.0)
    seconds = time.perf_counter() - start
    with lock:
        missing = requests - len(latencies) - len(errors)
        errors.extend(["not sent before the deadline"] * max(0, missing))
        return LoadResult(tuple(latencies), tuple(errors), seconds, connections, dict(statuses))
