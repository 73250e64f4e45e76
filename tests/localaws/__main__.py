# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the local AWS endpoint as a process.

    python -m tests.localaws serve [--host 127.0.0.1] [--port 0] [--port-file PATH] [--pid-file PATH]
    python -m tests.localaws stop --pid-file PATH [--timeout SECONDS]

``serve`` runs until SIGTERM or SIGINT. Once it listens it writes the port number to the port file and
its process id to the pid file (each written atomically) and prints the endpoint URL; on shutdown it
removes both files, so ``stop`` knows the server has finished when the pid file is gone.
"""

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

from tests.localaws import LocalAWS


def _write_atomically(path, text):
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def serve(args):
    """Serve until a termination signal arrives."""
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    written = [path for path in (args.pid_file, args.port_file) if path]
    with LocalAWS(host=args.host, port=args.port) as endpoint:
        try:
            if args.pid_file:
                _write_atomically(args.pid_file, f"{os.getpid()}\n")
            if args.port_file:
                _write_atomically(args.port_file, f"{endpoint.port}\n")
            print(f"localaws listening on {endpoint.endpoint_url}", flush=True)
            stopping.wait()
        finally:
            for path in written:
                Path(path).unlink(missing_ok=True)
    return 0


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(args):
    """Send SIGTERM to the server named by the pid file and wait until it has shut down."""
    pid_file = Path(args.pid_file)
    try:
        pid = int(pid_file.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        print(f"no pid file at {pid_file}: nothing to stop", file=sys.stderr)
        return 0
    if not _alive(pid):
        pid_file.unlink(missing_ok=True)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not pid_file.exists() or not _alive(pid):
            return 0
        time.sleep(0.05)
    print(f"localaws (pid {pid}) did not stop within {args.timeout} s; killing it", file=sys.stderr)
    os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return 1


def main(argv=None):
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tests.localaws", description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the endpoint until SIGTERM/SIGINT")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve_parser.add_argument("--port-file", help="write the chosen port here once listening")
    serve_parser.add_argument("--pid-file", help="write the server's process id here")
    serve_parser.set_defaults(run=serve)
    stop_parser = commands.add_parser("stop", help="stop a server started with --pid-file")
    stop_parser.add_argument("--pid-file", required=True)
    stop_parser.add_argument("--timeout", type=float, default=10.0)
    stop_parser.set_defaults(run=stop)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
