"""Running the application with uvicorn: in the foreground (the CLI) or in a thread (tests).

The socket is bound here rather than by uvicorn, so that a port in use or a host that does not
exist is a one-line error before the server starts, and so that tests can bind port 0 and read
back the free port the system chose.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator

from cnnlab.errors import CnnlabError

#: Seconds a background server may take to start or to stop.
START_TIMEOUT = 20.0


def needs_server_libraries() -> None:
    """The one line a user without the ``serve`` extra gets."""
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise CnnlabError(
            "cnnlab serve needs FastAPI and uvicorn: pip install 'cnnlab[serve]'"
        ) from None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and the loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one), or a one-line error."""
    if not 0 <= port <= 65535:
        raise CnnlabError(f"--port {port}: give a port from 1 to 65535, or 0 for a free one")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as error:
        raise CnnlabError(f"--host {host}: unknown host ({error.strerror})") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as error:
        sock.close()
        hint = "choose another --port" if port else "check --host"
        raise CnnlabError(
            f"--host {host} --port {port}: cannot listen there ({error.strerror}); {hint}"
        ) from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


def serve_forever(app, sock: socket.socket) -> None:
    """Serves ``app`` on ``sock`` until Ctrl-C (uvicorn handles the signal and shuts down)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=30)
    uvicorn.Server(config).run(sockets=[sock])


@contextlib.contextmanager
def background_server(app, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serves ``app`` in a thread while the block runs; yields its base URL.

    For tests and benchmarks: the port is a free one (port 0), every wait is bounded by
    :data:`START_TIMEOUT`, and the server is stopped and joined on the way out.
    """
    import uvicorn

    sock = bind_socket(host, port)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test server did not start within {START_TIMEOUT:g} s")
            time.sleep(0.02)
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)
        sock.close()
