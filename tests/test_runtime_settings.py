"""RuntimeSettings reach the backends: the s3:// model download and the TensorRT engine store use the configured
cache and S3 endpoint (real SeaweedFS on loopback), and the hashed precision is honoured or refused, never ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.config import load_config
from tests.services import S3Service
from workers.contract import DetectorConfig, RuntimeSettings
from workers.detect.bundled import bundled, verified_path
from workers.detect.factory import make_detector
from workers.detect.tensorrt import build_options, engine_store


def test_an_s3_model_downloads_from_the_configured_endpoint_into_the_model_cache(
    s3_service: S3Service, s3_bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    spec = bundled("nanodet-g")
    assert spec is not None
    s3_service.client().upload_file(verified_path(spec), s3_bucket, "models/det.onnx")
    uri = f"s3://{s3_bucket}/models/det.onnx"
    # The endpoint comes from the config only (no AWS_ENDPOINT_URL* in this test's environment), as with
    # `--s3-endpoint-url`: hashing the config fetches the model to take its sha256.
    config = load_config(overrides={"s3_endpoint_url": s3_endpoint, "model_cache": str(tmp_path / "models"),
                                    "detector": {"model": uri}}, env={})
    assert config.hashed_dict()["detector"]["model_sha256"] == spec.sha256
    (cached,) = (tmp_path / "models").iterdir()
    assert cached.name.endswith("-det.onnx")


def test_the_engine_store_uses_the_configured_cache_and_endpoint(s3_endpoint: str, tmp_path: Path) -> None:
    runtime = RuntimeSettings(engine_cache=str(tmp_path / "engines"), engine_s3="s3://shared/trt",
                              s3_endpoint_url=s3_endpoint)
    store = engine_store(runtime)
    assert store.local.root == tmp_path / "engines"
    assert store.shared is not None and store.shared.bucket == "shared" and store.shared.prefix == "trt/"
    assert store.shared.client.meta.endpoint_url == s3_endpoint


def test_tensorrt_builds_at_the_hashed_precision_with_the_runtime_batch_profile() -> None:
    opts = build_options(DetectorConfig(precision="int8"), RuntimeSettings(trt_max_batch=4,
                                                                            trt_calibration_cache="/c.cache"))
    assert (opts.precision, opts.opt_batch, opts.max_batch, opts.calibration_cache) == ("int8", 4, 4, "/c.cache")
    assert build_options(DetectorConfig(), RuntimeSettings()).precision == "fp16"  # unset: TensorRT's default


@pytest.mark.parametrize(("cfg", "refused"), [
    (DetectorConfig(kind="hog", precision="fp16"), "hog on cpu runs fp32"),
    (DetectorConfig(precision="int8"), "int8 needs TensorRT"),
    (DetectorConfig(backend="torch", precision="fp16"), "fp16 needs a gpu profile"),
    (DetectorConfig(precision="int4"), "use fp32, fp16 or int8"),
])
def test_a_precision_the_cpu_runtimes_cannot_honour_is_refused(cfg: DetectorConfig, refused: str) -> None:
    with pytest.raises(ValueError, match=refused):
        make_detector(cfg, "cpu")


@pytest.mark.parametrize("cfg", [DetectorConfig(kind="hog", precision="fp32"), DetectorConfig(precision="fp32"),
                                 DetectorConfig(backend="torch", precision="fp32")])
def test_fp32_is_what_every_cpu_runtime_runs(cfg: DetectorConfig) -> None:
    make_detector(cfg, "cpu")
