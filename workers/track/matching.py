"""Association primitives for ByteTrack: IoU, score fusion, gated linear assignment."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def iou_matrix(a_xyxy: npt.ArrayLike, b_xyxy: npt.ArrayLike) -> F64:
    """(N, M) IoU of two box sets, with the "+1 pixel" convention of ByteTrack's reference (cython_bbox).

    Widths and heights count both end pixels (x2 - x1 + 1), as in the Pascal VOC devkit; ByteTrack's
    thresholds were tuned with it, so plain IoU would change which pairs pass the gates."""
    a = np.asarray(a_xyxy, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b_xyxy, dtype=np.float64).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    overlap = (iw > 0) & (ih > 0)
    inter = np.where(overlap, iw * ih, 0.0)
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(overlap, inter / np.where(overlap, union, 1.0), 0.0)


def iou_distance(a_xyxy: npt.ArrayLike, b_xyxy: npt.ArrayLike) -> F64:
    return 1.0 - iou_matrix(a_xyxy, b_xyxy)


def fuse_score(cost: F64, det_scores: F64) -> F64:
    """ByteTrack's score fusion: similarity IoU becomes IoU x detection score, so confident boxes win ties."""
    if cost.size == 0:
        return cost
    return 1.0 - (1.0 - cost) * det_scores[None, :]


def linear_assignment(cost: F64, thresh: float) -> tuple[I64, I64, I64]:
    """Minimum-cost matching where leaving a row and a column unmatched costs `thresh` (per pair).

    This is what ByteTrack gets from `lap.lapjv(cost, extend_cost=True, cost_limit=thresh)`: the matrix is
    extended to (n + m) x (n + m) with every row/column able to pair with a dummy at cost thresh / 2 (dummy
    vs dummy costs 0), so a real pair is used only when it lowers the total. scipy's solver on the same
    extended matrix gives the same optimum (the global optimum is unique except for exact ties).

    Returns (matches (K, 2) [row, col], unmatched rows ascending, unmatched cols ascending)."""
    n, m = cost.shape
    if n == 0 or m == 0:
        return np.empty((0, 2), dtype=np.int64), np.arange(n, dtype=np.int64), np.arange(m, dtype=np.int64)
    ext = np.full((n + m, n + m), thresh / 2.0)
    ext[n:, m:] = 0.0
    ext[:n, :m] = cost
    rows, cols = linear_sum_assignment(ext)
    real = (rows < n) & (cols < m)
    matches = np.stack([rows[real], cols[real]], axis=1).astype(np.int64)
    row_matched = np.zeros(n, dtype=bool)
    row_matched[matches[:, 0]] = True
    col_matched = np.zeros(m, dtype=bool)
    col_matched[matches[:, 1]] = True
    return matches, np.flatnonzero(~row_matched), np.flatnonzero(~col_matched)
