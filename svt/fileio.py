"""Atomic file writing: outputs appear whole or not at all, so an interrupted job never leaves a
truncated JSON, MIDI or checkpoint behind that a resumed job would trust."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to `path`; on success it is renamed onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_json_atomic(path, obj, indent=None) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def no_duplicate_keys(pairs):
    """`json.loads(..., object_pairs_hook=no_duplicate_keys)`: a JSON object naming a key twice is
    a ValueError naming the key (json keeps the last one silently, losing the first song)."""
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r} appears twice")
        seen[key] = value
    return seen


def unsafe_name_reason(name: str) -> str | None:
    """Why `name` (a song id from an annotation file) cannot name a file or folder safely, or
    None: ids become paths under dataset and output folders, so `../x`, `/abs` or `a/b` would
    write outside them."""
    name = str(name)
    if name in ("", ".", ".."):
        return "is empty or a relative folder name"
    if any(c in name for c in "/\\\0"):
        return "contains a path separator or a NUL byte"
    return None


class Terminated(BaseException):
    """SIGTERM arrived (a scheduler or `kill` stopping the job). A BaseException, like
    KeyboardInterrupt, so that `except Exception` clauses (a per-file error handler) let it pass."""

    exit_status = 128 + 15


#: Stop signals received inside `stop_signals_raise` blocks (see `raise_if_stopped`).
_received_stops: list = []


@contextlib.contextmanager
def stop_signals_raise():
    """Within the block SIGTERM raises `Terminated` and SIGINT KeyboardInterrupt, so the `finally`
    clauses that remove temporary files and half-written outputs run (Python's default for
    SIGTERM ends the process without running them); each signal is also remembered for
    `raise_if_stopped`. Only the main thread can set handlers; elsewhere the block runs
    unchanged."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        _received_stops.append(signum)
        raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    _received_stops.clear()
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def raise_if_stopped() -> None:
    """Raise the stop a signal asked for if a library swallowed it: an exception raised in a C
    callback (soundfile's reads from a file object) comes back as that library's own error, which
    a per-file `except Exception` would report as a failed file and go on."""
    import signal

    if _received_stops:
        raise KeyboardInterrupt() if _received_stops[-1] == signal.SIGINT else Terminated()
