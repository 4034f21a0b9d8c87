"""What the use cases open first: INPUT and OUTPUT, checked before anything is queued, then the work queue (the
configured Redis, or the embedded server for the length of the session)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from jobs.config import VidpipeConfig
from jobs.embedded import EmbeddedRedis, check_placement
from jobs.queue import WorkQueue
from jobs.storage import Storage, open_storage


def checked_storages(config: VidpipeConfig, input_url: str, output_url: str) -> tuple[Storage, Storage]:
    """INPUT readable and OUTPUT writable, checked before the (embedded) Redis starts: a typo costs nothing."""
    inp = open_storage(input_url, endpoint_url=config.s3_endpoint_url, region=config.s3_region)
    out = open_storage(output_url, endpoint_url=config.s3_endpoint_url, region=config.s3_region)
    inp.check()
    out.check(for_write=True)
    return inp, out


@contextlib.contextmanager
def queue_session(config: VidpipeConfig) -> Iterator[WorkQueue]:
    """The configured Redis, or the embedded server (started now, stopped at the end)."""
    if config.redis_url:
        yield WorkQueue.from_url(config.redis_url)
        return
    check_placement(config.embedded_redis_dir)  # under `ray job submit`: refuse a queue in Ray's cache
    server = EmbeddedRedis(config.embedded_redis_dir).start()
    try:
        server.supervise()  # restarted on the same port if it dies under the job (or its owner exits)
        queue = WorkQueue.from_url(server.url)
        queue.lost_reason = lambda: server.lost_reason
        yield queue
    finally:
        server.stop()
