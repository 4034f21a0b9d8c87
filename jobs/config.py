"""One typed configuration: defaults < config file (YAML/JSON) < environment < command line.

This is the one place vidpipe reads its settings, environment variables included (ENV_OVERRIDES); the data
plane gets them as the settings dataclasses of workers/contract/settings.py, never from the environment.
Variables that Ray and boto3 read themselves (RAY_*, AWS credentials, AWS_ENDPOINT_URL) are left to them.

`config_hash()` covers only what changes the results (detector, sampling, tracker...), so two runs
that would write the same outputs share a hash: that is what makes re-submission idempotent and the
nightly batch incremental. Connection settings (Redis URL, endpoints) are never hashed or written
to outputs, and `redact_url()` masks the Redis password for logs.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from workers.contract import DetectorConfig, RuntimeSettings, SamplingConfig, TrackerConfig

__all__ = ["ConfigError", "DetectorConfig", "SamplingConfig", "TrackerConfig", "VidpipeConfig", "load_config"]


class ConfigError(ValueError):
    """A configuration problem the user can fix; the message says how."""


@dataclass(frozen=True)
class QueueConfig:
    lease_seconds: float = 60.0  # a claimed video not renewed within this is redelivered
    max_attempts: int = 3  # then the video goes to the dead-letter list with its last error
    backoff_seconds: float = 5.0  # first retry delay; doubles per attempt
    # Deaths of the machine under a video (worker or actor killed, lease expired, S3/network trouble) do not
    # charge the video's attempts; they have this much larger budget of their own, so a video that keeps
    # killing its worker still ends (dead-lettered) instead of looping forever.
    max_infra_faults: int = 10
    # A worker that loses Redis keeps its in-flight videos running and retries with backoff (warning as it
    # goes) for this long, then ends resumably with exit code 3.
    redis_outage_seconds: float = 300.0


@dataclass(frozen=True)
class VidpipeConfig:
    # --- what affects results (hashed) ---
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    # --- how it runs (not hashed) ---
    profile: str = "cpu"  # cpu | gpu | gpu-fused (workers/executor/profiles.py)
    allow_cpu_fallback: bool = False  # gpu profile on a machine without CUDA: error unless True
    batch_size: int = 0  # frames per batch to start with; 0 = the profile's (cpu 8, gpu 16), 8 inline
    video_extensions: tuple[str, ...] = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".ts")
    redis_url: str = ""  # empty = start the embedded private server
    s3_endpoint_url: str = ""  # for S3-compatible stores (MinIO, SeaweedFS...)
    s3_region: str = ""
    queue: QueueConfig = field(default_factory=QueueConfig)
    # Pictures drawn from the decoded frames (workers/render/); each enters the hash once asked for, so a rerun
    # that asks for one reprocesses the videos committed without it.
    preview: bool = False  # preview.png per video: a contact sheet of tracked frames (the demo turns it on)
    annotate: bool = False  # annotated.mp4 per video: every processed frame with its tracks drawn
    ray_address: str = ""  # empty = auto (connect if RAY_ADDRESS is set, else start a local Ray)
    embedded_redis_dir: str = ".vidpipe/redis"  # AOF + lock of the embedded server (no redis_url), cwd-relative
    debug_aws: bool = False  # let botocore's DEBUG lines through (secrets are still masked: jobs/logsafe.py)
    # --- how the backends run on each node (not hashed): carried to them as RuntimeSettings ---
    model_cache: str = RuntimeSettings.model_cache
    engine_cache: str = RuntimeSettings.engine_cache
    engine_s3: str = RuntimeSettings.engine_s3
    trt_max_batch: int = RuntimeSettings.trt_max_batch
    trt_calibration_cache: str = RuntimeSettings.trt_calibration_cache
    nvdec_prefetch: bool = RuntimeSettings.nvdec_prefetch

    HASHED = ("detector", "sampling", "tracker")
    # Hashed settings added after results were committed, with the default that reproduces what ran before: at
    # that default they stay out of the hash, so existing configs keep their hash and their committed results.
    HASHED_UNLESS_DEFAULT = (("detector", "precision"),)

    def config_hash(self) -> str:
        blob = json.dumps(self.hashed_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def hashed_dict(self) -> dict[str, Any]:
        """The results-affecting settings, the detector resolved: per-model defaults and the model file's sha256
        (workers/detect/model_config.py), so replacing the file behind the same path changes the hash."""
        from workers.detect.model_config import resolve

        resolved = dataclasses.replace(self, detector=resolve(self.detector, runtime=self.runtime_settings()))
        hashed = {name: dataclasses.asdict(getattr(resolved, name)) for name in self.HASHED}
        for section, key in self.HASHED_UNLESS_DEFAULT:
            if hashed[section][key] == getattr(type(getattr(self, section))(), key):
                del hashed[section][key]
        if self.preview or self.annotate:
            hashed["pictures"] = {"preview": self.preview, "annotate": self.annotate}
        return hashed

    def runtime_settings(self) -> RuntimeSettings:
        """What the backends need of this config besides the hashed settings (same field names)."""
        return RuntimeSettings(**{f.name: getattr(self, f.name) for f in fields(RuntimeSettings)})


def redact_url(url: str) -> str:
    """redis://user:secret@host:6379/0 -> redis://user:***@host:6379/0 (no-op without a password)."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        password, port = parts.password, parts.port
    except ValueError:  # malformed ('[::1', ':notaport'): mask anything between '//user:' and '@' anyway
        return re.sub(r"(//[^/@:]*:)[^@]*@", r"\1***@", url)
    if password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@{parts.hostname}" + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# Every environment variable vidpipe reads for a setting, and the config key it sets (of two for one key, the
# later wins). README, "Configuration", lists them.
ENV_OVERRIDES = {
    "REDIS_URL": "redis_url",
    "VIDPIPE_REDIS_URL": "redis_url",
    "AWS_ENDPOINT_URL_S3": "s3_endpoint_url",
    "VIDPIPE_S3_ENDPOINT_URL": "s3_endpoint_url",
    "VIDPIPE_PROFILE": "profile",
    "RAY_ADDRESS": "ray_address",
    "VIDPIPE_EMBEDDED_REDIS_DIR": "embedded_redis_dir",
    "VIDPIPE_DEBUG_AWS": "debug_aws",
    "VIDPIPE_TRT_PRECISION": "detector.precision",
    "VIDPIPE_MODEL_CACHE": "model_cache",
    "VIDPIPE_ENGINE_CACHE": "engine_cache",
    "VIDPIPE_ENGINE_S3": "engine_s3",
    "VIDPIPE_TRT_MAX_BATCH": "trt_max_batch",
    "VIDPIPE_TRT_CALIBRATION_CACHE": "trt_calibration_cache",
    "VIDPIPE_NVDEC_PREFETCH": "nvdec_prefetch",
}


def _unknown_key(cls: type, key: str, where: str) -> ConfigError:
    """The error for a key `cls` lacks: the close match ("did you mean"), else every valid key."""
    known = sorted(f.name for f in fields(cls))
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return ConfigError(f"unknown config key '{where}{key}': did you mean '{where}{close[0]}'?")
    return ConfigError(f"unknown config key '{where}{key}'; valid keys: {', '.join(known)}")


def expand_dotted(data: dict[str, Any]) -> dict[str, Any]:
    """`{"detector.input_width": 512}` (the README's notation) -> `{"detector": {"input_width": 512}}`.

    Dotted and nested forms may be mixed; the same setting given twice is an error, not a silent pick."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            value = expand_dotted(value)
        head, dot, rest = str(key).partition(".")
        if dot:
            value = expand_dotted({rest: value})
        if head in out and isinstance(out[head], dict) and isinstance(value, dict):
            clash = set(out[head]) & set(value)
            if clash:
                raise ConfigError(f"config key {head}.{sorted(clash)[0]} is given twice (dotted and nested)")
            out[head] = _deep_merge(out[head], value)
        elif head in out:
            raise ConfigError(f"config key {head!r} is given twice")
        else:
            out[head] = value
    return out


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise _unknown_key(cls, key, where)
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                sub = [f.name for f in fields(default)]  # declaration order: the first is the main one
                raise ConfigError(
                    f"config key {where}{key!r} must be a mapping of its settings ({', '.join(sorted(sub))}), e.g. "
                    f"in YAML '{where}{key}:' then '  {sub[0]}: ...' on the next line, or '{where}{key}.{sub[0]}: ...'"
                )
            kwargs[key] = _build(type(default), value, f"{where}{key}.")
        elif isinstance(default, tuple):
            kwargs[key] = tuple(value if isinstance(value, list | tuple) else [value])
        elif isinstance(default, bool):
            kwargs[key] = _as_bool(value, f"{where}{key}")
        elif isinstance(default, int | float) and not isinstance(value, int | float):
            try:
                kwargs[key] = type(default)(value)
            except ValueError as exc:
                raise ConfigError(f"config key {where}{key!r}: expected a number, got {value!r}") from exc
        else:
            kwargs[key] = value
    return cls(**kwargs)


def _as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes", "on"):
        return True
    if str(value).lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"config key {key!r}: expected true/false, got {value!r}")


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> VidpipeConfig:
    """defaults < file < env < overrides (nested dicts, e.g. {"detector": {"kind": "onnx"}})."""
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        text = p.read_text()
        try:
            if p.suffix in (".yaml", ".yml"):
                import yaml

                loaded = yaml.safe_load(text) or {}
            else:
                loaded = json.loads(text)
        except Exception as exc:  # yaml/json errors carry line numbers; keep them
            raise ConfigError(f"config file {p} is not valid {p.suffix.lstrip('.') or 'JSON'}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must contain a mapping at the top level")
        data = expand_dotted(loaded)
    environ = os.environ if env is None else env
    for var, key in ENV_OVERRIDES.items():
        if environ.get(var):
            data = _deep_merge(data, expand_dotted({key: environ[var]}))
    if overrides:
        data = _deep_merge(data, overrides)
    config: VidpipeConfig = _build(VidpipeConfig, data, "")
    return _model_tracker_defaults(config, data)


def _model_tracker_defaults(config: VidpipeConfig, data: dict[str, Any]) -> VidpipeConfig:
    """tracker.track_thresh, unless set, follows the bundled model's score scale (workers/detect/bundled.py)."""
    from workers.detect.bundled import bundled

    tracker = data.get("tracker")
    spec = bundled(config.detector.model) if config.detector.kind != "hog" else None
    if spec is None or (isinstance(tracker, dict) and "track_thresh" in tracker):
        return config
    return dataclasses.replace(config, tracker=dataclasses.replace(config.tracker, track_thresh=spec.track_thresh))
