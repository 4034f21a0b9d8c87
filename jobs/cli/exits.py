"""Exit codes: what a command returns when a use case raises (README, "Running against real S3 and Redis")."""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import Callable

import redis

from jobs import interrupts
from jobs.cli import EXIT_USER_ERROR
from jobs.config import ConfigError
from jobs.embedded import EmbeddedRedisError
from jobs.queue import EXIT_QUEUE_LOST, QueueError, QueueLost
from jobs.storage import StorageError
from workers.contract import VideoError

log = logging.getLogger("vidpipe")

# VideoError here = the processor could not start (backend unavailable, model cannot load): says why.
USER_ERRORS = (ConfigError, QueueError, StorageError, EmbeddedRedisError, VideoError)


def user_errors(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Print a user-fixable error as one clear line (no traceback) and exit 2; Redis lost mid-run: one line,
    exit 3 (resumable); an interrupt (Ctrl-C, SIGTERM, SIGHUP) exits with one line too, 128 + the signal
    number (130, 143, 129), after the runner handed back its leases (it logs how to resume)."""

    def wrapped(args: argparse.Namespace) -> int:
        interrupts.install()
        try:
            return fn(args)
        except USER_ERRORS as exc:
            log.error("%s", exc)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            log.warning("stopped by Ctrl-C (SIGINT)")
            return 128 + signal.SIGINT
        except SystemExit as exc:
            # Not only SignalExit: inside a Ray call Ray swaps it for SystemExit(1) (interrupts.raised_signal).
            signum = exc.signum if isinstance(exc, interrupts.SignalExit) else interrupts.raised_signal()
            if signum is None:
                raise
            log.warning("stopped by %s", signal.Signals(signum).name)
            return 128 + signum
        except QueueLost as exc:
            log.error("%s", exc)
            return EXIT_QUEUE_LOST
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.error("lost Redis mid-run (%s): nothing is lost (its AOF holds every queued and leased video); "
                      "bring Redis back (or fix REDIS_URL) and rerun the same command to resume", type(exc).__name__)
            return EXIT_QUEUE_LOST

    return wrapped
