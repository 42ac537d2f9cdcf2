"""Keep TensorFlow's C++ start-up lines off the command line's terminal.

TensorFlow's native code writes lines such as ``I0000 00:00:17.7 29844
cudart_stub.cc:31] Could not find cuda drivers`` and ``WARNING: All log
messages before absl::InitializeLog() is called are written to STDERR``
straight to file descriptor 2, before ``TF_CPP_MIN_LOG_LEVEL`` is read, so
neither that variable nor Python's logging can silence them. The command line
therefore puts a filter on descriptor 2: a pipe read by a thread that passes
every line through except those of the absl log format, and the hint that
follows TensorFlow's CPU-feature line. The library itself never does this:
a program importing ``two_stage_rec`` keeps its own stderr untouched.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sys
import threading

__all__ = ["is_native_log_line", "quiet_native_logs"]

_NATIVE = re.compile(
    rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] "  # absl: I0000 00:00:17.71 29844 port.cc:153]
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.)"
)

_installed = False


def is_native_log_line(line: bytes) -> bool:
    """Whether ``line`` is one of TensorFlow's native log lines (which the filter drops)."""
    return _NATIVE.match(line) is not None


def quiet_native_logs() -> None:
    """Filter TensorFlow's native log lines out of this process's stderr, until it exits.

    Idempotent. Does nothing when ``TWO_STAGE_REC_NATIVE_LOGS=1`` (to see them
    while debugging) or when descriptor 2 cannot be redirected.
    """
    global _installed
    if _installed or os.environ.get("TWO_STAGE_REC_NATIVE_LOGS") == "1":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # what TensorFlow's own setting can still hide
    try:
        sys.stderr.flush()
        original = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
    except OSError:
        return
    _installed = True

    def pump() -> None:
        with os.fdopen(read_end, "rb", buffering=0) as source:
            pending = b""
            while chunk := source.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                kept = b"".join(line + b"\n" for line in lines if not is_native_log_line(line))
                if kept:
                    os.write(original, kept)
            if pending and not is_native_log_line(pending):
                os.write(original, pending)

    worker = threading.Thread(target=pump, name="native-log-filter", daemon=True)
    worker.start()

    def restore() -> None:
        # Put the real stderr back and let the pump drain what is left in the pipe,
        # so an error printed just before exit is never lost.
        with contextlib.suppress(OSError, ValueError):  # stderr may already be closed at exit
            sys.stderr.flush()
        os.dup2(original, 2)
        worker.join(timeout=2.0)

    atexit.register(restore)
