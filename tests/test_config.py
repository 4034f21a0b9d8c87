"""Config file ergonomics: the shipped example, dotted keys, "did you mean", nested-form hints."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobs.config import ConfigError, VidpipeConfig, load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "jobs" / "config.example.yaml"


def _key_paths(obj: Any, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out |= _key_paths(value, f"{prefix}{f.name}.")
        elif f.name != "HASHED":
            out.add(prefix + f.name)
    return out


def _yaml_paths(data: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in data.items():
        out |= _yaml_paths(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
    return out


def test_example_config_loads_and_names_every_key() -> None:
    config = load_config(EXAMPLE, env={})
    assert isinstance(config, VidpipeConfig)
    assert _yaml_paths(yaml.safe_load(EXAMPLE.read_text())) == _key_paths(VidpipeConfig())


def test_dotted_keys_as_the_readme_writes_them(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detector.input_width: 512\ntracker:\n  track_buffer: 60\nqueue.max_attempts: 5\n")
    config = load_config(cfg, env={})
    assert config.detector.input_width == 512 and config.detector.kind == VidpipeConfig().detector.kind
    assert config.tracker.track_buffer == 60 and config.queue.max_attempts == 5
    # the same setting twice (dotted and nested) is refused rather than silently picking one
    cfg.write_text("detector.input_width: 512\ndetector:\n  input_width: 640\n")
    with pytest.raises(ConfigError, match="given twice"):
        load_config(cfg, env={})


@pytest.mark.parametrize(("text", "expected"), [
    ("detektor:\n  kind: hog\n", "unknown config key 'detektor': did you mean 'detector'?"),
    ("detector:\n  input_widht: 512\n",
     "unknown config key 'detector.input_widht': did you mean 'detector.input_width'?"),
    ("detector.scor_threshold: 0.2\n", "did you mean 'detector.score_threshold'?"),
    ("zzz: 1\n", "valid keys: allow_cpu_fallback, annotate, batch_size"),
])
def test_unknown_keys_suggest_the_close_match(tmp_path: Path, text: str, expected: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(cfg, env={})
    assert expected in str(info.value)


def test_scalar_for_a_section_shows_the_nested_form(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detector: onnx\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg, env={})
    msg = str(info.value)
    assert "'detector' must be a mapping" in msg and "detector.kind: ..." in msg and "'detector:'" in msg


@pytest.mark.parametrize(("variable", "value", "field", "expected"), [
    ("VIDPIPE_MODEL_CACHE", "/m", "model_cache", "/m"),
    ("VIDPIPE_ENGINE_CACHE", "/e", "engine_cache", "/e"),
    ("VIDPIPE_ENGINE_S3", "s3://b/engines", "engine_s3", "s3://b/engines"),
    ("VIDPIPE_TRT_MAX_BATCH", "16", "trt_max_batch", 16),
    ("VIDPIPE_TRT_CALIBRATION_CACHE", "/c.cache", "trt_calibration_cache", "/c.cache"),
    ("VIDPIPE_NVDEC_PREFETCH", "1", "nvdec_prefetch", True),
    ("AWS_ENDPOINT_URL_S3", "http://s3.local:8333", "s3_endpoint_url", "http://s3.local:8333"),
])
def test_environment_reaches_the_backends_settings(variable: str, value: str, field: str, expected: Any) -> None:
    """Read once here, carried to the backends as RuntimeSettings (they read no environment themselves)."""
    runtime = load_config(env={variable: value}).runtime_settings()
    assert getattr(runtime, field) == expected
    assert getattr(load_config(env={}).runtime_settings(), field) != expected


def test_backend_defaults_are_the_config_defaults() -> None:
    from workers.contract import RuntimeSettings

    assert VidpipeConfig().runtime_settings() == RuntimeSettings()


def test_precision_is_hashed_once_set_and_old_configs_keep_their_hash() -> None:
    default = load_config(env={})
    assert "precision" not in default.hashed_dict()["detector"]  # unset: the hash every earlier run committed
    fp32 = load_config(env={"VIDPIPE_TRT_PRECISION": "fp32"})
    assert fp32.detector.precision == "fp32" and fp32.hashed_dict()["detector"]["precision"] == "fp32"
    assert len({default.config_hash(), fp32.config_hash(),
                load_config(overrides={"detector": {"precision": "int8"}}, env={}).config_hash()}) == 3
    # not hashed: where the backends cache and how TensorRT batches
    assert load_config(env={"VIDPIPE_ENGINE_CACHE": "/e", "VIDPIPE_TRT_MAX_BATCH": "8"}).config_hash() == \
        default.config_hash()


def test_debug_aws_is_a_config_key_read_from_the_environment() -> None:
    assert load_config(env={"VIDPIPE_DEBUG_AWS": "1"}).debug_aws is True
    assert load_config(env={}).debug_aws is False
