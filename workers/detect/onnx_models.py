"""Small ONNX graphs in the YOLOv8 export format, built with onnx.helper (no downloads, no torch).

- `grid_brightness_model`: a *known-output* detector for tests: the image is split into cells of `cell` px;
  each cell is a candidate box (centre of the cell, cell-sized) whose class-0 score is the cell's mean
  brightness (0..1). A bright square in a frame must come back as a box exactly there, in source pixels.
- `tiny_conv_model`: a real (random-weight, seeded) conv net: 4 stride-2 convs + a 1x1 head, input 320 x 320,
  output (B, 4 + nc, N). Its detections mean nothing; its cost is that of a small real CNN. Used by the
  benchmark as "an ONNX detector".
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _save(graph: onnx.GraphProto, path: str) -> str:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="vidpipe")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def grid_brightness_model(path: str, size: int = 64, cell: int = 16) -> str:
    g = size // cell
    n = g * g
    ys, xs = np.divmod(np.arange(n), g)
    boxes = np.stack([(xs + 0.5) * cell, (ys + 0.5) * cell, np.full(n, cell), np.full(n, cell)]).astype(np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["gray"], axes=[1], keepdims=1),  # (B,1,H,W)
        helper.make_node("AveragePool", ["gray"], ["cells"], kernel_shape=[cell, cell], strides=[cell, cell]),
        helper.make_node("Reshape", ["cells", "flat_shape"], ["scores"]),  # (B,1,N)
        helper.make_node("Mul", ["scores", "zeros"], ["zero_boxes"]),  # (B,4,N) by broadcasting
        helper.make_node("Add", ["zero_boxes", "boxes"], ["batch_boxes"]),
        helper.make_node("Concat", ["batch_boxes", "scores"], ["output0"], axis=1),  # (B,5,N)
    ]
    inits = [
        numpy_helper.from_array(np.array([0, 1, -1], np.int64), "flat_shape"),
        numpy_helper.from_array(np.zeros((1, 4, n), np.float32), "zeros"),
        numpy_helper.from_array(boxes[None], "boxes"),
    ]
    graph = helper.make_graph(
        nodes,
        "grid_brightness",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 5, n])],
        initializer=inits,
    )
    return _save(graph, path)


def tiny_conv_model(path: str, size: int = 320, num_classes: int = 1, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    chans = [3, 16, 32, 64, 64]
    nodes, inits = [], []
    x = "images"
    for i in range(4):
        w = rng.normal(0, (2.0 / (chans[i] * 9)) ** 0.5, (chans[i + 1], chans[i], 3, 3)).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"w{i}"),
            numpy_helper.from_array(np.zeros(chans[i + 1], np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node(
                "Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]
            ),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
        ]
        x = f"r{i}"
    out_c = 4 + num_classes
    wh = rng.normal(0, 0.05, (out_c, chans[-1], 1, 1)).astype(np.float32)
    bh = np.zeros(out_c, np.float32)
    bh[4:] = -4.0  # class logits start low: a handful of candidates pass a 0.1 threshold, as with real models
    inits += [numpy_helper.from_array(wh, "wh"), numpy_helper.from_array(bh, "bh")]
    inits.append(numpy_helper.from_array(np.array([0, out_c, -1], np.int64), "flat_shape"))
    scale = np.ones((1, out_c, 1), np.float32)
    scale[0, :4, 0] = size  # boxes in input pixels
    inits.append(numpy_helper.from_array(scale, "scale"))
    nodes += [
        helper.make_node("Conv", [x, "wh", "bh"], ["head"], kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["head", "flat_shape"], ["flat"]),
        helper.make_node("Sigmoid", ["flat"], ["sig"]),
        helper.make_node("Mul", ["sig", "scale"], ["output0"]),
    ]
    n = (size // 16) ** 2
    graph = helper.make_graph(
        nodes,
        "tiny_conv_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", out_c, n])],
        initializer=inits,
    )
    return _save(graph, path)
