"""``cnnlab serve``: the local web page to try a model, teach convolutions and review mistakes."""

from __future__ import annotations

import argparse
import math
import warnings

from cnnlab.errors import CnnlabError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_UPLOAD_MB = 10.0


def add_commands(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve",
        help="a local web page: draw or drop an image, see what the network sees, relabel",
    )
    serve.set_defaults(handler=_serve)
    serve.add_argument(
        "runs", nargs="+", metavar="RUN", help="run or model folders (the first is the default)"
    )
    serve.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on [{DEFAULT_HOST}: this computer only]",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to listen on; 0 takes a free one (the URL printed says which) [{DEFAULT_PORT}]",
    )
    serve.add_argument(
        "--max-upload-mb",
        type=float,
        default=DEFAULT_MAX_UPLOAD_MB,
        help=f"largest upload of one request, in MiB [{DEFAULT_MAX_UPLOAD_MB:g}]",
    )


def _serve(args: argparse.Namespace) -> int:
    from cnnlab.serve.server import needs_server_libraries

    needs_server_libraries()
    from cnnlab.serve import create_app
    from cnnlab.serve.server import bind_socket, is_loopback, serve_forever, url_of

    megabytes = args.max_upload_mb
    if not math.isfinite(megabytes) or megabytes <= 0:
        raise CnnlabError(f"--max-upload-mb {megabytes:g}: give a size above 0, e.g. 10")
    if not is_loopback(args.host):
        warnings.warn(
            f"--host {args.host}: the page is reachable from other computers, without a "
            "password; serve on 127.0.0.1 unless you mean that",
            stacklevel=1,
        )
    # Every run is loaded (and refused with its name) before the port is taken.
    app = create_app(args.runs, max_upload_bytes=int(megabytes * 1024 * 1024))
    sock = bind_socket(args.host, args.port)
    runs = ", ".join(app.state.runs)
    print(f"cnnlab: serving {runs} at {url_of(sock)}/ (Ctrl-C to stop)", flush=True)
    try:
        serve_forever(app, sock)
    finally:
        sock.close()
    return 0
