"""The worker loop: claim videos from the queue, drive a VideoProcessor, commit, ack.

    claim while the processor has capacity  ->  skip if a verified manifest exists
    poll the processor                      ->  commit results (manifest last), then ack
                                                or record the failure (retry / dead letter)
    a background thread renews the leases of every video in flight

The processor comes from a factory (`ProcessorFactory`), so the same loop drives the Ray pipeline
(`workers.executor.pipeline.VideoPipeline`), the in-process one (`workers.inline.InlinePipeline`) or anything
else implementing `workers.contract.VideoProcessor`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from jobs.config import ConfigError, VidpipeConfig
from jobs.interrupts import signals_deferred
from jobs.queue import (
    JobSpec,
    JobStatus,
    Lease,
    QueueLost,
    WorkQueue,
    clear_forced,
    is_forced,
    make_owner,
    mark_active,
)
from jobs.results import CommitAborted, ResultWriter
from jobs.storage import Storage, StorageError, open_storage
from workers import metrics
from workers.contract import (
    DetectorConfig,
    PipelineSettings,
    PipelineStats,
    RenderConfig,
    SamplingConfig,
    TrackerConfig,
    VideoError,
    VideoFailure,
    VideoInput,
    VideoOutcome,
    VideoProcessor,
    VideoResult,
    VideoSource,
)
from workers.local_ray import (
    free_each_released_object,
    shutdown_started_ray,
    use_local_ray_auth_mode,
    use_local_ray_without_metrics,
)

log = logging.getLogger(__name__)

ProcessorFactory = Callable[[VidpipeConfig], VideoProcessor]
MAX_IN_FLIGHT = 256  # claims held by one worker at most, whatever capacity() says


def job_config(job: JobSpec, base: VidpipeConfig) -> VidpipeConfig:
    """The worker's runtime config with the job's results-affecting settings (they define the output)."""
    c = job.config
    pictures = c.get("pictures", {})  # the job's outputs, not the worker's own flags
    return dataclasses.replace(
        base,
        detector=_from_json(DetectorConfig, c.get("detector", {})),
        sampling=_from_json(SamplingConfig, c.get("sampling", {})),
        tracker=_from_json(TrackerConfig, c.get("tracker", {})),
        preview=bool(pictures.get("preview", False)),
        annotate=bool(pictures.get("annotate", False)),
        queue=job.queue,
    )


def _from_json(cls: Any, data: dict[str, Any]) -> Any:
    """Rebuild a frozen settings dataclass from its JSON form (JSON lists back to tuples)."""
    defaults = cls()
    kwargs = {k: tuple(v) if isinstance(getattr(defaults, k, None), tuple) else v for k, v in data.items()}
    return cls(**kwargs)


def _class_names(config: VidpipeConfig) -> tuple[str, ...]:
    """The model's class names for the result files; none (ids written as class_<id>) if the model can't be read:
    the processor then fails the videos with the model's error."""
    from workers.detect.model_config import class_names

    try:
        return class_names(config.detector, config.runtime_settings())
    except VideoError as exc:
        log.warning("class names unavailable (%s): writing class_<id>", exc)
        return ()


def pipeline_settings(config: VidpipeConfig) -> PipelineSettings:
    """What the stages are built from: the job's results-affecting settings, the pictures to draw, and how the
    backends run on each node."""
    pictures = config.preview or config.annotate
    render = RenderConfig(config.preview, config.annotate, _class_names(config) if pictures else ())
    return PipelineSettings(config.detector, config.sampling, config.tracker, render, config.batch_size,
                            config.runtime_settings())


def default_processor_factory(inline: bool = False) -> ProcessorFactory:
    """VideoPipeline (Ray, the configured profile) or, with `inline`, InlinePipeline (one process)."""

    def make(config: VidpipeConfig) -> VideoProcessor:
        if inline:
            from workers.inline import InlinePipeline

            return InlinePipeline(pipeline_settings(config))
        return RayPipeline(config)

    return make


class RayPipeline:
    """workers.executor.pipeline.VideoPipeline plus Ray's lifetime: connects to `ray_address` (or RAY_ADDRESS), else
    starts a local Ray on loopback, and shuts Ray down on close() only if it started it."""

    def __init__(self, config: VidpipeConfig):
        import ray

        from workers.executor.profiles import get_profile

        try:
            profile = get_profile(config.profile)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if profile.uses_gpu:
            from workers.gpu import require_gpu

            # once, before any actor exists: BackendUnavailable (one line, exit 2) or, when allowed, CPU
            if not require_gpu(config.allow_cpu_fallback):
                profile = get_profile("cpu")
        self._owns_ray = False
        # ray.init installs its own SIGTERM handler, sys.exit(15): the documented exit is vidpipe's 143 with
        # the leases handed back, so vidpipe's handler (if one is installed) is put back afterwards.
        main = threading.current_thread() is threading.main_thread()
        ours = signal.getsignal(signal.SIGTERM) if main else None
        if not ray.is_initialized():
            if config.ray_address:
                ray.init(address=config.ray_address, log_to_driver=False)
            else:
                use_local_ray_auth_mode()
                use_local_ray_without_metrics()
                # "local": always a private instance, never a `ray start` cluster that happens to run here.
                ray.init(
                    address="local",
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                    log_to_driver=False,
                    _system_config=free_each_released_object(),
                )
                self._owns_ray = True
        if main and callable(ours):
            signal.signal(signal.SIGTERM, ours)
        from workers.executor.pipeline import VideoPipeline

        try:
            self._pipe = VideoPipeline(profile, pipeline_settings(config))
        except BaseException:
            self._shutdown()
            raise

    def capacity(self) -> int:
        return self._pipe.capacity()

    def submit(self, source: VideoSource) -> None:
        self._pipe.submit(source)

    def poll(self, timeout: float = 0.5) -> list[VideoOutcome]:
        return self._pipe.poll(timeout)

    def in_flight(self) -> int:
        return self._pipe.in_flight()

    def stats(self) -> PipelineStats:
        return self._pipe.stats()

    def close(self) -> None:
        try:
            self._pipe.close()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        if self._owns_ray:
            shutdown_started_ray()
            self._owns_ray = False


class LeaseKeeper(threading.Thread):
    """Renews the leases of videos in flight every lease/3 seconds, on its own thread, so a long
    commit or a slow poll never lets a lease lapse. Remembers leases it failed to renew (lost)."""

    def __init__(self, queue: WorkQueue, lease_seconds: float):
        super().__init__(name="vidpipe-lease-keeper", daemon=True)
        self.queue = queue
        self.lease_seconds = lease_seconds
        self._held: dict[str, Lease] = {}
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def add(self, lease: Lease) -> None:
        with self._lock:
            self._held[lease.token] = lease

    def remove(self, lease: Lease) -> None:
        with self._lock:
            self._held.pop(lease.token, None)
            self._lost.discard(lease.token)

    def clear(self) -> None:
        with self._lock:
            self._held.clear()

    def held(self) -> list[Lease]:
        with self._lock:
            return list(self._held.values())

    def lost(self, lease: Lease) -> bool:
        with self._lock:
            return lease.token in self._lost

    def renew_now(self, lease: Lease) -> bool:
        ok = self.queue.renew([lease], self.lease_seconds)[0]
        if not ok:
            with self._lock:
                self._lost.add(lease.token)
        return ok

    def run(self) -> None:
        interval = max(0.1, self.lease_seconds / 3.0)
        while not self._halt.wait(interval):
            with self._lock:
                leases = list(self._held.values())
            if not leases:
                continue
            try:
                flags = self.queue.renew(leases, self.lease_seconds)
            except Exception as exc:  # Redis blip: try again next tick; the lease has 2 more ticks
                log.warning("lease renewal failed (%s: %s); retrying", type(exc).__name__, exc)
                continue
            with self._lock:
                for lease, ok in zip(leases, flags, strict=True):
                    if not ok and lease.token in self._held:
                        if lease.token not in self._lost:
                            log.warning("lost the lease on %s (expired and taken by another worker)", lease.key)
                        self._lost.add(lease.token)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=5)


@dataclass
class WorkerStats:
    committed: int = 0
    skipped: int = 0
    failed: int = 0
    retried: int = 0
    frames: int = 0  # processed (sampled) frames of the videos this worker committed
    started: float = field(default_factory=time.monotonic)  # reset when the processor is ready
    warnings: list[str] = field(default_factory=list)  # e.g. truncated videos committed with partial results

    def live_frames(self, stats: PipelineStats | None) -> int:
        """Frames processed so far in this session: the last stage's count while videos are still in flight
        (so the first video does not read 0 frames/s), never less than what was committed."""
        last = next((st for st in reversed(stats.stages) if st.name == "track"), stats.stages[-1]) \
            if stats and stats.stages else None
        return max(self.frames, int(last.frames) if last else 0)

    def fps(self, stats: PipelineStats | None, now: float | None = None) -> float:
        elapsed = (time.monotonic() if now is None else now) - self.started
        return self.live_frames(stats) / elapsed if elapsed > 0 else 0.0


PROGRESS_WIDTH = 80  # the bar line is built to fit a standard terminal


def progress_text(status: JobStatus, fps: float) -> str:
    """The counts after the bar: short enough that bar + counts fit PROGRESS_WIDTH."""
    parts = [f"{status.failed} failed"] if status.failed else []
    parts += [f"{status.running} running", f"{fps:.0f} fps" if fps >= 100 else f"{fps:.1f} fps"]
    return " ".join(parts)


def stages_text(stats: PipelineStats | None) -> str:
    return " ".join(
        f"{s.name}:{s.fps:.0f}fps/{s.busy:.0%}{'' if s.state == 'ok' else '(' + s.state + ')'}"
        for s in (stats.stages if stats else [])
    )


class ProgressView:
    """On a terminal: a rich live display (bar line + stage line) with logging routed through it, so log
    lines print above the bar instead of gluing onto it. Otherwise (or with bar=False): a plain log line
    every 10 s."""

    LOG_EVERY = 10.0

    def __init__(self, bar: bool = True, console: Any = None):
        self._progress: Any = None
        self._task: Any = None
        self._swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
        self._last_log = time.monotonic()
        if console is None and not (bar and sys.stderr.isatty()):
            return
        from rich.console import Console

        self._start(console or Console(stderr=True))

    def _start(self, console: Any) -> None:
        from rich.file_proxy import FileProxy
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.text import Text

        class _TwoLines(Progress):
            stage_line = ""

            def get_renderables(self) -> Any:
                yield self.make_tasks_table(self.tasks)
                if self.stage_line:
                    yield Text(self.stage_line, no_wrap=True, overflow="ellipsis", style="dim")

        # 7 + 1 + 16 + 1 + 11 + 1 + 7 + 1 + 34 (text) = 79 columns at most, for up to 99,999 videos
        self._progress = _TwoLines(
            TextColumn("[bold]videos"), BarColumn(bar_width=16), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.description}"), console=console, transient=False, redirect_stderr=False,
            redirect_stdout=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("", total=None)
        # Route the root logger's terminal handlers through the live display: rich prints each line above it.
        proxy = FileProxy(console, console.file)
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stderr, sys.__stderr__):
                self._swapped.append((handler, handler.setStream(proxy)))

    def update(self, status: JobStatus, stats: PipelineStats | None, worker: WorkerStats) -> None:
        fps = worker.fps(stats)
        finished = status.done + status.skipped + status.failed
        text = progress_text(status, fps)
        if self._progress is not None:
            self._progress.stage_line = stages_text(stats)
            self._progress.update(self._task, total=status.total, completed=finished, description=text)
        elif time.monotonic() - self._last_log > self.LOG_EVERY:
            self._last_log = time.monotonic()
            log.info("progress %s: %d/%d videos, %s %s", status.job_id, finished, status.total, text,
                     stages_text(stats))

    def close(self) -> None:
        if self._progress is not None:
            for handler, stream in self._swapped:
                handler.setStream(stream)
            self._swapped.clear()
            self._progress.stop()
            self._progress = None


class JobRunner:
    """Processes one job's work items until the job is complete (none queued, none leased)."""

    def __init__(
        self,
        queue: WorkQueue,
        job: JobSpec,
        factory: ProcessorFactory,
        base_config: VidpipeConfig,
        *,
        owner: str | None = None,
        progress: bool = True,
        input_storage: Storage | None = None,
        output_storage: Storage | None = None,
    ):
        self.queue = queue
        self.job = job
        self.config = job_config(job, base_config)
        self.factory = factory
        self.owner = owner or make_owner()
        self.progress = progress
        self.input = input_storage or open_storage(
            job.input_url, endpoint_url=self.config.s3_endpoint_url, region=self.config.s3_region
        )
        self.output = output_storage or open_storage(
            job.output_url, endpoint_url=self.config.s3_endpoint_url, region=self.config.s3_region
        )
        self.writer = ResultWriter(self.output, job.config_hash, job.config, _class_names(self.config))
        self.stats = WorkerStats()
        self._forced: set[str] = set()  # keys in flight queued by --force: reprocessed even if committed

    def run(self) -> JobStatus:
        status = self.queue.status(self.job.job_id)
        if status.complete:
            return status
        keeper = LeaseKeeper(self.queue, self.job.queue.lease_seconds)
        keeper.start()
        view = ProgressView(self.progress)
        in_flight: dict[str, tuple[Lease, VideoInput]] = {}
        proc: VideoProcessor | None = None
        clean_exit = False
        try:
            mark_active(self.queue, self.job.job_id)
            proc = self.factory(self.config)
            self.stats.started = time.monotonic()  # throughput of this session, from a ready processor
            last_status = 0.0
            while True:
                try:
                    wait_hint = self._fill(proc, in_flight, keeper)
                    if in_flight:
                        for outcome in proc.poll(timeout=0.5):
                            self._finish(outcome, in_flight, keeper)
                    if time.monotonic() - last_status > 0.5 or not in_flight:
                        if in_flight:
                            mark_active(self.queue, self.job.job_id)
                        status = self.queue.status(self.job.job_id, failures_limit=0)  # counts only: cheap
                        last_status = time.monotonic()
                        metrics.record_queue_depth(self.job.job_id, status.depth())
                        view.update(status, _safe_stats(proc), self.stats)
                        if not in_flight and status.complete:
                            break
                    if not in_flight:
                        # Nothing to do here: items are leased by other workers or waiting out a backoff.
                        time.sleep(min(max(wait_hint, 0.05), 0.5) if wait_hint >= 0 else 0.5)
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                    self._ride_out(exc)
            clean_exit = True
        except BaseException as exc:
            view.close()  # before any message: the bar must not swallow it
            handed_back = len(keeper.held())  # every claimed lease: in flight, or claimed but not yet submitted
            self._abandon(in_flight, keeper, exc)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                log.warning("interrupted: %d video(s) in flight handed back to the queue (not counted as attempts). "
                            "Resume with the same command, or `vidpipe work --job %s`", handed_back, self.job.job_id)
            raise
        finally:
            view.close()
            keeper.stop()
            with contextlib.suppress(Exception):  # the active-time record is best effort
                mark_active(self.queue, self.job.job_id, closing=True)
            if proc is not None:
                try:
                    proc.close()
                except Exception as exc:
                    if clean_exit:
                        log.warning("closing the processor failed: %s: %s", type(exc).__name__, exc)
        return self.queue.status(self.job.job_id)

    def _fill(self, proc: VideoProcessor, in_flight: dict[str, tuple[Lease, VideoInput]], keeper: LeaseKeeper) -> float:
        """Claim and submit while the processor has room. Returns the queue's wait hint."""
        while proc.capacity() > 0 and len(in_flight) < MAX_IN_FLIGHT:
            with signals_deferred():  # a lease Redis granted always reaches the keeper (and so is handed back)
                lease, wait = self.queue.claim(self.job, self.owner)
                if lease is not None:
                    keeper.add(lease)
            if lease is None:
                return wait
            try:
                if is_forced(self.queue, self.job.job_id, lease.key):
                    self._forced.add(lease.key)
                elif self.writer.verify(lease.key, lease.info):
                    self._ack(lease, keeper, "skipped", 0)
                    log.info("skipped %s: results already committed for this input version and config", lease.key)
                    continue
                video = self.input.video(lease.info)
                proc.submit(VideoSource(video_id=lease.key, input=video))
            except VideoError as exc:
                self._fail(lease, keeper, f"{type(exc).__name__}: {exc}", exc.retryable, exc.video_fault)
                continue
            except StorageError as exc:
                self._fail(lease, keeper, f"StorageError: {exc}", True, False)
                continue
            except redis.exceptions.RedisError:
                raise  # the queue itself is gone: not this video's fault
            except Exception as exc:  # a data-plane bug on this video: fail it (bounded retries), keep working
                log.exception("submitting %s failed", lease.key)
                self._fail(lease, keeper, f"{type(exc).__name__}: {exc}", True, True)
                continue
            in_flight[lease.key] = (lease, video)
        return 0.0

    def _finish(self, outcome: VideoResult | VideoFailure, in_flight: dict[str, tuple[Lease, VideoInput]],
                keeper: LeaseKeeper) -> None:
        entry = in_flight.pop(outcome.video_id, None)
        if entry is None:
            log.warning("processor returned an unknown video id %r; ignoring it", outcome.video_id)
            return
        lease, _ = entry
        if keeper.lost(lease):
            keeper.remove(lease)
            log.warning("discarding the result of %s: its lease was lost to another worker", lease.key)
            return
        if isinstance(outcome, VideoFailure):
            self._fail(lease, keeper, f"{outcome.error_type}: {outcome.message}", outcome.retryable,
                       outcome.video_fault)
            return
        try:
            res = self.writer.commit(
                lease.key, lease.info, outcome, job_id=self.job.job_id, attempt=lease.attempt,
                still_ours=lambda: keeper.renew_now(lease),
                force=lease.key in self._forced,
            )
        except CommitAborted as exc:
            log.warning("%s", exc)
            if not keeper.lost(lease) and keeper.renew_now(lease):
                # Still ours, but another (stale) attempt wrote meanwhile: the next attempt verifies what is
                # in the output and skips it, or redoes it. Not the video's fault.
                self._fail(lease, keeper, f"commit conflict: {exc}", True, False)
            else:
                keeper.remove(lease)
            return
        except StorageError as exc:
            self._fail(lease, keeper, f"commit failed: {exc}", True, False)
            return
        except redis.exceptions.RedisError:
            keeper.remove(lease)  # not renewed any more: it expires and the video is redelivered (or found done)
            raise
        except Exception as exc:  # e.g. a malformed result (array shapes): this video fails, the worker goes on
            log.exception("committing %s failed", lease.key)
            self._fail(lease, keeper, f"commit failed: {type(exc).__name__}: {exc}", False, True)
            return
        self._note_warnings(lease.key, res.manifest)
        self._ack(lease, keeper, res.outcome, int(outcome.info.sampled_frames))  # processed, not source, frames
        if lease.key in self._forced:
            self._forced.discard(lease.key)
            clear_forced(self.queue, self.job.job_id, lease.key)

    def _note_warnings(self, key: str, manifest: dict[str, Any]) -> None:
        for warning in manifest.get("warnings", []):
            self.stats.warnings.append(f"{key}: {warning}")
            log.warning("%s committed with a warning: %s", key, warning)

    def _ack(self, lease: Lease, keeper: LeaseKeeper, outcome: str, frames: int) -> None:
        try:
            ok = self.queue.complete(lease, outcome, frames)
        finally:
            keeper.remove(lease)
        if not ok:
            log.warning("ack of %s refused: the lease was lost (another attempt owns it)", lease.key)
            return
        metrics.record_video(outcome)
        if outcome == "done":
            self.stats.committed += 1
            self.stats.frames += frames
            log.debug("committed %s (%d frames)", lease.key, frames)
        else:
            self.stats.skipped += 1

    def _fail(self, lease: Lease, keeper: LeaseKeeper, error: str, retryable: bool, charges: bool) -> None:
        try:
            verdict = self.queue.fail(lease, self.job, error, retryable=retryable, charges_attempt=charges)
        finally:
            keeper.remove(lease)
        if verdict == "retry":
            self.stats.retried += 1
            log.warning("%s failed (attempt %d), will retry: %s", lease.key, lease.attempt, error)
        elif verdict == "dead":
            metrics.record_failure(error.split(":", 1)[0])
            metrics.record_video("failed")
            self.stats.failed += 1
            log.error("%s failed for good after %d attempt(s): %s", lease.key, lease.attempt, error)

    def _ride_out(self, exc: Exception) -> None:
        """Redis is unreachable beyond the client's reconnect budget: wait for it with backoff, warning as we
        go, while the processor keeps its videos; give up resumably (QueueLost, exit 3) after
        queue.redis_outage_seconds, or at once when the embedded server is known to be gone."""
        budget = self.job.queue.redis_outage_seconds
        start = last_warning = time.monotonic()
        log.warning("lost Redis at %s (%s); in-flight videos keep running; retrying for up to %.0f s",
                    self.queue.where, type(exc).__name__, budget)
        delay = 0.5
        while True:
            reason = self.queue.lost_reason()
            if reason:
                raise QueueLost(reason)
            if self.queue.ping_once():
                log.warning("Redis at %s is back after %.0f s; carrying on", self.queue.where,
                            time.monotonic() - start)
                return
            waited = time.monotonic() - start
            if waited > budget:
                raise QueueLost(
                    f"Redis at {self.queue.where} has been unreachable for {waited:.0f} s: nothing is lost (its AOF "
                    "holds every queued and leased video); bring Redis back (or fix REDIS_URL) and rerun the same "
                    "command to resume")
            if time.monotonic() - last_warning > 30:
                last_warning = time.monotonic()
                log.warning("still no Redis at %s after %.0f s (giving up at %.0f s)", self.queue.where, waited,
                            budget)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _abandon(self, in_flight: dict[str, tuple[Lease, VideoInput]], keeper: LeaseKeeper, exc: BaseException) -> None:
        """On interrupt give leases back untouched; on a processor crash count a machine fault (bounded by
        max_infra_faults, so a video that crashes the pipeline every time still ends in the dead-letter list)."""
        interrupted = isinstance(exc, KeyboardInterrupt | SystemExit)
        if isinstance(exc, QueueLost | redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            # Redis is gone: every hand-back would wait out the reconnect budget. The leases expire instead and
            # the videos are redelivered (a finished commit is found by the next attempt's verify).
            keeper.clear()
            in_flight.clear()
            return
        # A signal can land between a claim and the submit (the lease is held but not in flight yet): an
        # interrupt hands those back too, or they would show "running" until their lease expires.
        in_flight_tokens = {lease.token for lease, _ in in_flight.values()}
        claimed_only = [lease for lease in keeper.held() if lease.token not in in_flight_tokens]
        for lease in claimed_only if interrupted else []:
            try:
                self.queue.release(lease)
            except Exception as inner:  # best effort: the lease will expire anyway
                log.warning("could not hand back %s: %s", lease.key, inner)
            keeper.remove(lease)
        for lease, _ in list(in_flight.values()):
            try:
                if interrupted:
                    self.queue.release(lease)
                else:
                    self.queue.fail(lease, self.job, f"processor crashed: {type(exc).__name__}: {exc}", retryable=True,
                                    charges_attempt=False)
            except Exception as inner:  # best effort: the lease will expire anyway
                log.warning("could not hand back %s: %s", lease.key, inner)
            keeper.remove(lease)
        in_flight.clear()


def _safe_stats(proc: VideoProcessor) -> PipelineStats | None:
    try:
        return proc.stats()
    except Exception:
        return None


def format_summary(status: JobStatus, worker: WorkerStats | None = None) -> str:
    """A plain-text final summary (also what `vidpipe status` prints)."""
    lines = [
        f"job {status.job_id}: {status.input_url} -> {status.output_url} (config {status.config_hash})",
        f"  videos: {status.total} total, {status.done} done, {status.skipped} skipped, {status.failed} failed, "
        f"{status.queued} queued ({status.retrying} waiting to retry), {status.running} running",
        f"  throughput: {status.frames} frames processed in {status.elapsed_s:.1f} s running = "
        f"{status.frames_per_s:.1f} frames/s, {status.videos_per_s:.3f} videos/s",
    ]
    if worker is not None and worker.warnings:
        lines.append(f"  warnings ({len(worker.warnings)}):")
        lines += [f"    {w}" for w in worker.warnings]
    if status.failures:
        lines.append(f"  failures ({status.failed}):")
        for f in status.failures:
            lines.append(f"    {f['key']}: {f['error']} (after {f['attempts']} attempt(s))")
        if status.failed > len(status.failures):
            lines.append(f"    ... and {status.failed - len(status.failures)} more (`vidpipe status --job "
                         f"{status.job_id} --all-failures` lists them)")
    state = "complete" if status.complete else "in progress"
    verdict = "all videos done or skipped" if status.succeeded else ("FAILED videos above" if status.failed else "")
    lines.append(f"  {state}{': ' + verdict if verdict else ''}")
    return "\n".join(lines)
