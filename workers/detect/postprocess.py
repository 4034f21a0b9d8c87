"""Model-output decoding and NMS for the ONNX (and TensorRT, torch) detectors.

YOLOv8 / YOLO11 export format: one output of shape (B, 4 + nc, N): for each of N candidates, box centre
x, centre y, width, height in model-input pixels, then nc per-class scores (already sigmoid-ed; there is
no separate objectness as in YOLOv5). A transposed (B, N, 4 + nc) layout is accepted too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from workers.contract import DetectionBatch, DetectorConfig, FrameBatch, ModelError
from workers.detect.preprocess import Letterbox

if TYPE_CHECKING:
    import torch


def export_layout(rows: int, cols: int, num_classes_hint: int = 0) -> bool:
    """True when a (rows, cols) per-image output is the export layout (4 + nc, N), False for (N, 4 + nc).

    With N > 4 + nc the layouts are unambiguous; when N < 4 + nc pass the class count (the ONNX detector
    does when it knows it). Every backend (ONNX Runtime, TensorRT, torch) decides with this function.
    """
    if num_classes_hint and rows == 4 + num_classes_hint:
        return True
    if num_classes_hint and cols == 4 + num_classes_hint:
        return False
    return rows <= cols


def yolo_candidates(output: np.ndarray, num_classes_hint: int = 0) -> np.ndarray:
    """Normalise one image's output to (N, 4 + nc), candidates along the first axis."""
    if output.ndim != 2:
        raise ModelError(f"expected a (4+nc, N) YOLO output per image, got shape {output.shape}")
    rows, cols = output.shape
    return output.T if export_layout(rows, cols, num_classes_hint) else output


def decode_yolo(
    output: np.ndarray,
    score_threshold: float,
    iou_threshold: float,
    classes: tuple[int, ...] = (),
    max_detections: int = 300,
    num_classes: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's YOLO output -> (boxes xyxy (M,4) float32 in model-input pixels, scores (M,), class ids (M,)).

    Per-class NMS (the Ultralytics default: boxes of different classes never suppress each other).
    """
    cand = yolo_candidates(np.asarray(output, dtype=np.float32), num_classes)
    if cand.shape[1] < 5:
        raise ModelError(f"YOLO output has {cand.shape[1]} values per candidate; expected 4 box + >= 1 class")
    cls_scores = cand[:, 4:]
    class_ids = cls_scores.argmax(axis=1)
    scores = cls_scores[np.arange(len(cand)), class_ids]
    keep = scores >= score_threshold
    if classes:
        keep &= np.isin(class_ids, np.asarray(classes))
    cand, scores, class_ids = cand[keep], scores[keep], class_ids[keep]
    if len(cand) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)
    boxes = cxcywh_to_xyxy(cand[:, :4])
    kept = nms(boxes, scores, iou_threshold, class_ids)[:max_detections]
    return boxes[kept], scores[kept].astype(np.float32), class_ids[kept].astype(np.int32)


def decode_yolo_tensor(
    raw: torch.Tensor,
    export: bool,
    score_threshold: float,
    iou_threshold: float,
    classes: tuple[int, ...] = (),
    max_detections: int = 300,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`decode_yolo` for a batch still on its torch device (TensorRT and torch backends).

    Class max/argmax, the score threshold and the class filter run where the tensor is (GPU); only the
    surviving candidates (tens per frame, not 8400 x (4 + nc) values) are copied to the host, where
    this module's own cxcywh_to_xyxy + nms finish exactly as for ONNX Runtime's output.
    """
    import torch

    cand = (raw.transpose(1, 2) if export else raw).float()  # (n, N, 4 + nc)
    if cand.shape[-1] < 5:
        raise ModelError(f"YOLO output has {cand.shape[-1]} values per candidate; expected 4 box + >= 1 class")
    cls_max, cls_id = cand[..., 4:].max(dim=-1)
    keep = cls_max >= score_threshold
    if classes:
        keep &= torch.isin(cls_id, torch.tensor(classes, device=cand.device))
    img, idx = keep.nonzero(as_tuple=True)
    img_h = img.cpu().numpy()
    box_h = cand[img, idx, :4].cpu().numpy()
    score_h = cls_max[img, idx].cpu().numpy()
    id_h = cls_id[img, idx].cpu().numpy()
    out = []
    for i in range(int(raw.shape[0])):
        sel = img_h == i
        b = cxcywh_to_xyxy(box_h[sel])
        s = score_h[sel].astype(np.float32)
        c = id_h[sel].astype(np.int32)
        kept = nms(b, s, iou_threshold, c)[:max_detections]
        out.append((b[kept], s[kept], c[kept]))
    return out


def cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    out = np.empty_like(b, dtype=np.float32)
    half_w, half_h = b[:, 2] / 2, b[:, 3] / 2
    out[:, 0] = b[:, 0] - half_w
    out[:, 1] = b[:, 1] - half_h
    out[:, 2] = b[:, 0] + half_w
    out[:, 3] = b[:, 1] + half_h
    return out


def nms(
    boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float, class_ids: np.ndarray | None = None
) -> np.ndarray:
    """Indices kept by greedy NMS, best score first (OpenCV's NMSBoxes / NMSBoxesBatched do the work).

    OpenCV takes x, y, w, h; with class ids it runs per class (batched NMS).
    """
    if len(boxes_xyxy) == 0:
        return np.zeros(0, np.int64)
    xywh = boxes_xyxy.astype(np.float32).copy()
    xywh[:, 2:] -= xywh[:, :2]
    s = scores.astype(np.float32)
    if class_ids is not None and len(np.unique(class_ids)) > 1:
        idx = cv2.dnn.NMSBoxesBatched(xywh.tolist(), s.tolist(), class_ids.astype(int).tolist(), 0.0, iou_threshold)
    else:
        idx = cv2.dnn.NMSBoxes(xywh.tolist(), s.tolist(), 0.0, iou_threshold)
    kept = np.asarray(idx, dtype=np.int64).reshape(-1)
    return kept[np.argsort(-s[kept], kind="stable")]


def detections_from_outputs(
    batch: FrameBatch, outputs: np.ndarray, geometry: Sequence[Letterbox], cfg: DetectorConfig, num_classes: int = 0
) -> DetectionBatch:
    """A batch's model outputs (B, 4 + nc, N) -> its DetectionBatch in source pixels (every frame listed).

    `cfg` is resolved (workers/detect/model_config.py): a float threshold and class ids. Shared by every backend
    whose outputs reach the host as arrays, so they decode and map boxes back identically.
    """
    from workers.detect.hog import make_detection_batch

    src_h, src_w = batch.frames.shape[1:3]
    classes = tuple(int(c) for c in cfg.classes or ())
    threshold = float(cfg.score_threshold)
    det_frame, boxes, scores, class_ids = [], [], [], []
    for i in range(len(batch)):
        b, s, c = decode_yolo(outputs[i], threshold, cfg.nms_iou, classes, num_classes=num_classes)
        b = geometry[i].to_source(b, src_w, src_h)
        if batch.source_scale != 1.0:  # the decode actor already fitted the frame into the model input
            b = (b / batch.source_scale).astype(np.float32)
        det_frame.append(np.full(len(b), batch.frame_indices[i], np.int64))
        boxes.append(b)
        scores.append(s)
        class_ids.append(c)
    return make_detection_batch(batch, det_frame, boxes, scores, class_ids)
