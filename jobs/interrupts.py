"""Stop signals (Ctrl-C, SIGTERM, SIGHUP) as exceptions, with a short critical section in which they wait.

SIGTERM (Ray job stop, Kubernetes, systemd) and SIGHUP (the terminal closed) unwind like Ctrl-C: the runner
hands its leases back untouched and the embedded Redis shuts down cleanly, instead of videos showing
"running" until their leases expire. Exit code 128 + signal: 130 (INT), 143 (TERM), 129 (HUP).

`signals_deferred()` exists because a signal landing inside a queue claim, after Redis granted the lease
but before the runner recorded it, leaves a lease that nobody hands back. Python runs signal handlers in
the main thread between bytecodes, so masking the signal in one thread cannot close that window (another
thread receives it); the handler itself waits instead.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_deferred: list[int] | None = None  # signals that arrived inside signals_deferred(); None outside it
_raised: int | None = None  # the SIGTERM or SIGHUP last raised as SignalExit (see raised_signal())


class SignalExit(SystemExit):
    """SIGTERM or SIGHUP received; the exit code is 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


def _raise(signum: int) -> None:
    global _raised
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    _raised = signum
    raise SignalExit(signum)


def raised_signal() -> int | None:
    """The SIGTERM or SIGHUP this process already raised as SignalExit, if any.

    The SignalExit itself may not reach the top: a Ray blocking call (ray.wait, ray.get) in the driver runs
    Python's signal handlers itself (_raylet.pyx check_signals: PyErr_CheckSignals), catches a SystemExit
    with a non-zero code as an "unexpected system exit" status, and check_status re-raises it as a plain
    SystemExit(1) ("Exit code: 143" survives only in its message). KeyboardInterrupt comes back as itself."""
    return _raised


def _handler(signum: int, frame: object) -> None:
    if _deferred is not None:
        _deferred.append(signum)
        return
    _raise(signum)


def install() -> None:
    """Route the stop signals through `_handler` (main thread only: Python allows handlers nowhere else)."""
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, _handler)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold stop signals until the block ends, then raise the first one. Keep the block short."""
    global _deferred
    if _deferred is not None or threading.current_thread() is not threading.main_thread():
        yield  # nested, or a thread that never receives Python signal handlers
        return
    _deferred = []
    try:
        yield
    finally:
        pending, _deferred = _deferred, None
        if pending:
            _raise(pending[0])
