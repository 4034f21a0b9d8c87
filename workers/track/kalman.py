"""Constant-velocity Kalman filter in (cx, cy, aspect, height) space, batched over tracks.

The model is the one deep_sort introduced and ByteTrack reuses: state = (cx, cy, a, h, vcx, vcy, va, vh), where
a = w / h; the motion and measurement noise standard deviations scale with the box height (std_weight_position
1/20, std_weight_velocity 1/160), except the aspect ratio, which gets small fixed noise. Every function here
works on a batch of K tracks at once (means (K, 8), covariances (K, 8, 8)), because the tracker predicts all
its tracks every frame and per-track numpy calls would dominate the frame time.

Written by hand (not filterpy / OpenCV's KalmanFilter) because parity with ByteTrack needs exactly this noise
model, and batching across tracks is what makes the tracker fast.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

STD_WEIGHT_POSITION = 1.0 / 20
STD_WEIGHT_VELOCITY = 1.0 / 160


def _diag_batch(std: F64) -> F64:
    """(K, n) standard deviations -> (K, n, n) diagonal covariance matrices."""
    k, n = std.shape
    out = np.zeros((k, n, n))
    idx = np.arange(n)
    out[:, idx, idx] = std * std
    return out


def initiate(measurements: F64) -> tuple[F64, F64]:
    """New tracks from (K, 4) xyah measurements: zero velocity, uncertainty proportional to height."""
    k = measurements.shape[0]
    h = measurements[:, 3]
    mean = np.zeros((k, 8))
    mean[:, :4] = measurements
    wp, wv = 2 * STD_WEIGHT_POSITION * h, 10 * STD_WEIGHT_VELOCITY * h
    std = np.stack([wp, wp, np.full(k, 1e-2), wp, wv, wv, np.full(k, 1e-5), wv], axis=1)
    return mean, _diag_batch(std)


def predict(mean: F64, cov: F64) -> tuple[F64, F64]:
    """One step of x' = F x, P' = F P F^T + Q with F = [[I, I], [0, I]] (dt = 1); returns new arrays.

    F is 0/1 with a single off-diagonal identity block, so F P F^T is two block additions; this gives the
    same floating-point result as the matrix products (the skipped terms are exact zeros)."""
    k = mean.shape[0]
    h = mean[:, 3]
    wp, wv = STD_WEIGHT_POSITION * h, STD_WEIGHT_VELOCITY * h
    std = np.stack([wp, wp, np.full(k, 1e-2), wp, wv, wv, np.full(k, 1e-5), wv], axis=1)
    new_mean = mean.copy()
    new_mean[:, :4] += mean[:, 4:]
    fp = cov.copy()
    fp[:, :4, :] += cov[:, 4:, :]  # F P
    fpf = fp.copy()
    fpf[:, :, :4] += fp[:, :, 4:]  # (F P) F^T
    idx = np.arange(8)
    fpf[:, idx, idx] += std * std  # + Q (diagonal)
    return new_mean, fpf


def update(mean: F64, cov: F64, measurements: F64) -> tuple[F64, F64]:
    """Kalman correction of K tracks with (K, 4) xyah measurements; returns new arrays.

    H = [I 0] so the projection is a slice; measurement noise scales with the predicted height."""
    h = mean[:, 3]
    wp = STD_WEIGHT_POSITION * h
    std = np.stack([wp, wp, np.full(mean.shape[0], 1e-1), wp], axis=1)
    projected_mean = mean[:, :4]
    projected_cov = cov[:, :4, :4] + _diag_batch(std)
    # Gain K = P H^T S^-1, computed as (S^-1 H P)^T: S is symmetric positive definite.
    gain = np.swapaxes(np.linalg.solve(projected_cov, cov[:, :4, :]), 1, 2)  # (K, 8, 4)
    innovation = measurements - projected_mean
    new_mean = mean + np.einsum("kij,kj->ki", gain, innovation)
    new_cov = cov - gain @ projected_cov @ np.swapaxes(gain, 1, 2)
    return new_mean, new_cov


def xyah_to_tlwh(mean: F64) -> F64:
    """(K, >=4) states -> (K, 4) top-left x, y, width, height."""
    out = mean[:, :4].copy()
    out[:, 2] *= out[:, 3]
    out[:, :2] -= out[:, 2:] / 2
    return out


def tlwh_to_xyah(tlwh: F64) -> F64:
    out = np.array(tlwh, dtype=np.float64, copy=True)
    out[:, :2] += out[:, 2:] / 2
    out[:, 2] /= out[:, 3]
    return out
