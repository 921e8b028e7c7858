"""The fsync helper: a child process that makes files durable for the broker.

Run as a script (`python -I fsync_helper.py`), it reads one request per line on stdin:
paths separated by NUL bytes. It opens each, fdatasyncs it (fsyncs a directory, which
the request marks with a trailing `/`), closes it, and answers on stdout with one line:
`0`, or the errno of the first failure.
It exits when stdin closes (or its answer finds no reader), so it ends with the broker,
kill -9 included; it ignores SIGINT and SIGTERM, which a terminal's Ctrl-C or a service
manager sends to the whole process group, so the broker's shutdown still has it. It
imports only `errno`, `os`, `signal` and `sys`, so it starts in milliseconds.
"""

import errno
import os
import signal
import sys


def sync(path: str) -> None:
    """fdatasync the file at `path`, or fsync the directory (a path that ends in `/`)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if path.endswith("/"):
            os.fsync(fd)
        else:
            os.fdatasync(fd)
    finally:
        os.close(fd)


def sync_all(paths: list[str]) -> None:
    """`sync` each path in turn; the first failure raises."""
    for path in paths:
        sync(path)


def serve(requests: int, replies: int) -> None:
    pending = b""
    while True:
        chunk = os.read(requests, 65536)
        if not chunk:
            return
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            error = 0
            try:
                sync_all(os.fsdecode(line).split("\0"))
            except OSError as exc:
                error = exc.errno or errno.EIO
            try:
                os.write(replies, b"%d\n" % error)
            except BrokenPipeError:  # the broker is gone (kill -9 mid-sync)
                return


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(sys.stdin.fileno(), sys.stdout.fileno())
