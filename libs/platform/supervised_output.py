"""supervisord's event listener for ``crm run``: every line a program prints, prefixed
with the program's name, so that the one terminal still says which service said what.

It speaks supervisord's listener protocol on stdin/stdout (READY, an event, RESULT) and
writes the prefixed lines to stderr, which supervisord passes to its own standard output.
Bytes throughout: an event's ``len`` counts bytes, and a program may print any.
"""

from __future__ import annotations

import sys
from typing import BinaryIO

NAME_WIDTH = 13


def _tokens(line: bytes) -> dict[bytes, bytes]:
    return dict(token.split(b":", 1) for token in line.split())


def prefix_output(events: BinaryIO, protocol: BinaryIO, out: BinaryIO) -> None:
    """Until ``events`` ends: each PROCESS_LOG event's whole lines to ``out``, prefixed.

    A line an event leaves unfinished waits for the program's next event."""
    unfinished: dict[bytes, bytes] = {}
    while True:
        protocol.write(b"READY\n")
        protocol.flush()
        header = events.readline()
        if not header:
            return
        payload = events.read(int(_tokens(header)[b"len"]))
        about, _, data = payload.partition(b"\n")
        name = _tokens(about).get(b"processname", b"?")
        lines = (unfinished.pop(name, b"") + data).split(b"\n")
        if lines[-1]:
            unfinished[name] = lines[-1]
        prefix = name.decode("utf-8", "replace").ljust(NAME_WIDTH).encode() + b"| "
        out.write(b"".join(prefix + line + b"\n" for line in lines[:-1]))
        out.flush()
        protocol.write(b"RESULT 2\nOK")
        protocol.flush()


if __name__ == "__main__":
    prefix_output(sys.stdin.buffer, sys.stdout.buffer, sys.stderr.buffer)
