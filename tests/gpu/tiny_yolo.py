"""A tiny, deterministic ONNX model with the YOLOv8 output format, built with onnx.helper (no download).

Input `images` (N, 3, H, W) float in 0..1 (default 64 x 64; H, W multiples of 8); output `output0`
(N, 4 + nc, H/8 * W/8): one candidate per 8x8 cell, box = cell centre + a bounded, content-dependent
offset, class scores = sigmoid of a fixed convolution. Weights come from a seeded RNG, so ONNX Runtime
and TensorRT see the same model, and boxes depend on the pixels (different frames -> different
detections), which is all the GPU tests need.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = 64
CELL = 8
NUM_CLASSES = 3


def build_tiny_yolo(
    path: Path, num_classes: int = NUM_CLASSES, seed: int = 0, height: int = SIZE, width: int = SIZE
) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    k = 4 + num_classes
    if height % CELL or width % CELL:
        raise ValueError(f"height and width must be multiples of {CELL}")
    gh, gw = height // CELL, width // CELL
    weight = rng.normal(0, 2.0, size=(k, 3, CELL, CELL)).astype(np.float32) / CELL
    bias = rng.normal(0, 0.5, size=(k,)).astype(np.float32)
    ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    centre = np.stack([xs.ravel() * CELL + CELL / 2, ys.ravel() * CELL + CELL / 2,
                       np.full(gh * gw, 2.0 * CELL), np.full(gh * gw, 2.0 * CELL)]).astype(np.float32)
    inits = [
        numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(bias, "b"),
        numpy_helper.from_array(np.array([0, k, gh * gw], np.int64), "shape"),
        numpy_helper.from_array(centre[None], "centre"),  # (1, 4, cells)
        numpy_helper.from_array(np.array([CELL / 2], np.float32), "scale"),
        numpy_helper.from_array(np.array([4, num_classes], np.int64), "split_sizes"),
    ]
    nodes = [
        helper.make_node("Conv", ["images", "w", "b"], ["conv"], kernel_shape=[CELL, CELL], strides=[CELL, CELL]),
        helper.make_node("Reshape", ["conv", "shape"], ["flat"]),  # (N, k, cells)
        helper.make_node("Split", ["flat", "split_sizes"], ["box_raw", "cls_raw"], axis=1),
        helper.make_node("Tanh", ["box_raw"], ["box_t"]),
        helper.make_node("Mul", ["box_t", "scale"], ["box_off"]),
        helper.make_node("Add", ["box_off", "centre"], ["boxes"]),
        helper.make_node("Sigmoid", ["cls_raw"], ["scores"]),
        helper.make_node("Concat", ["boxes", "scores"], ["output0"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, height, width])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["N", k, gh * gw])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
