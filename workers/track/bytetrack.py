"""ByteTrack (Zhang et al., ECCV 2022), reproducing the reference BYTETracker of ifzhang/ByteTrack.

One `ByteTracker` per video. Each `update()` takes that frame's detections and returns the confirmed tracks:

1. Split detections: high (score > track_thresh), low (0.1 < score < track_thresh), the rest dropped.
2. Pool = confirmed tracked + lost tracks, all Kalman-predicted (non-tracked ones with zero height velocity).
3. Stage 1: pool vs high dets, cost 1 - IoU * score, gated at match_thresh; matched lost tracks come back.
4. Stage 2: still-unmatched *tracked* tracks vs low dets, cost 1 - IoU, gate 0.5; the rest become lost.
5. Unconfirmed tracks (born last frame) vs leftover high dets (1 - IoU * score, gate 0.7); unmatched die.
6. Leftover high dets with score >= track_thresh + 0.1 start tracks (confirmed at once only on frame 1).
7. Lost tracks unmatched for more than int(frame_rate / 30 * track_buffer) frames are removed; a tracked and
   a lost track overlapping with IoU > 0.85 are duplicates and the shorter-lived one is dropped.

Reference quirks kept on purpose (they change ids on MOT17):
- a lost track removed in step 7 still sits in the lost list during the *next* frame (the reference filters
  the lost list with the removed list from before this frame), so it can be matched once more, and it takes
  part in that frame's duplicate check;
- a track whose id was ever removed is dropped as soon as it is lost again;
- ids are drawn when a track is born, so unconfirmed tracks that die leave gaps in the id sequence;
- unconfirmed tracks are matched with their birth box (they are not predicted).

Tracks are small objects, but the Kalman maths runs batched over all tracks of a stage (see kalman.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from workers.contract import TrackerConfig
from workers.track import kalman
from workers.track.matching import fuse_score, iou_distance, linear_assignment

F64 = npt.NDArray[np.float64]

LOW_SCORE_FLOOR = 0.1  # detections at or below this are ignored entirely
SECOND_STAGE_GATE = 0.5  # 1 - IoU gate for tracked tracks vs low-score detections
UNCONFIRMED_GATE = 0.7  # 1 - IoU*score gate for tracks born last frame
DUPLICATE_IOU_DISTANCE = 0.15  # tracked/lost pairs closer than this (IoU > 0.85) are duplicates
NEW_TRACK_MARGIN = 0.1  # a detection starts a track only with score >= track_thresh + this

TRACKED, LOST, REMOVED = 1, 2, 3


@dataclass
class TrackFrame:
    """Confirmed tracks of one frame (boxes from the Kalman state, scores of the last matched detection)."""

    ids: npt.NDArray[np.int64]  # (K,)
    boxes_xyxy: npt.NDArray[np.float32]  # (K, 4)
    scores: npt.NDArray[np.float32]  # (K,)

    @classmethod
    def empty(cls) -> TrackFrame:
        return cls(np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0, np.float32))


class _Track:
    __slots__ = ("activated", "cov", "frame_id", "mean", "score", "start_frame", "state", "track_id")

    def __init__(self, track_id: int, mean: F64, cov: F64, score: float, frame_id: int, activated: bool) -> None:
        self.track_id = track_id
        self.mean = mean  # (8,)
        self.cov = cov  # (8, 8)
        self.score = score
        self.state = TRACKED
        self.activated = activated
        self.frame_id = frame_id  # last frame this track was matched (the reference's end_frame)
        self.start_frame = frame_id


def _tlbrs(tracks: list[_Track]) -> F64:
    """(K, 4) boxes of tracks from their Kalman means, with the reference's tlwh -> tlbr arithmetic."""
    if not tracks:
        return np.zeros((0, 4))
    tlwh = kalman.xyah_to_tlwh(np.stack([t.mean for t in tracks]))
    tlwh[:, 2:] += tlwh[:, :2]
    return tlwh


class ByteTracker:
    """ByteTrack over one video. Ids start at 1 per instance; use one instance per video."""

    def __init__(self, config: TrackerConfig | None = None, frame_rate: float = 30.0) -> None:
        self.config = config or TrackerConfig()
        if not 0.0 < self.config.match_thresh <= 1.0:
            raise ValueError(f"match_thresh must be in (0, 1], got {self.config.match_thresh}")
        if self.config.track_buffer < 0:
            raise ValueError(f"track_buffer must be >= 0, got {self.config.track_buffer}")
        if frame_rate <= 0:
            raise ValueError(f"frame_rate must be > 0, got {frame_rate}; pass the video's real frame rate")
        self.frame_rate = frame_rate
        self.max_time_lost = int(frame_rate / 30.0 * self.config.track_buffer)
        self.new_track_thresh = self.config.track_thresh + NEW_TRACK_MARGIN
        self.frame_id = 0
        self._next_id = 1
        self._tracked: list[_Track] = []  # confirmed and unconfirmed, state TRACKED
        self._lost: list[_Track] = []
        self._removed_ids: set[int] = set()

    # ------------------------------------------------------------------ public API
    def update(self, boxes_xyxy: npt.ArrayLike, scores: npt.ArrayLike) -> TrackFrame:
        """Advance one frame with its detections ((N, 4) x1, y1, x2, y2 and (N,) scores; N may be 0)."""
        out = self.step(boxes_xyxy, scores)
        if not out:
            return TrackFrame.empty()
        return TrackFrame(
            ids=np.fromiter((t.track_id for t in out), np.int64, len(out)),
            boxes_xyxy=_tlbrs(out).astype(np.float32),
            scores=np.fromiter((t.score for t in out), np.float32, len(out)),
        )

    def update_tlwh(self, boxes_xyxy: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[npt.NDArray[np.int64], F64, F64]:
        """Like `update` but float64 (ids, top-left-width-height boxes, scores), for exact MOTChallenge output."""
        out = self.step(boxes_xyxy, scores)
        ids = np.fromiter((t.track_id for t in out), np.int64, len(out))
        tlwh = kalman.xyah_to_tlwh(np.stack([t.mean for t in out])) if out else np.zeros((0, 4))
        return ids, tlwh, np.fromiter((t.score for t in out), np.float64, len(out))

    # ------------------------------------------------------------------ the algorithm
    def step(self, boxes_xyxy: npt.ArrayLike, scores: npt.ArrayLike) -> list[_Track]:
        boxes, raw_scores = self._check_input(boxes_xyxy, scores)
        self.frame_id += 1
        if not len(raw_scores) and not self._tracked and not self._lost:
            # Nothing to match, predict or age out: the full step would only advance the frame count. A video's
            # per-class trackers sit here for every frame their class is absent, so this is most of their steps.
            return []
        frame_id = self.frame_id
        cfg = self.config

        # Thresholds are compared in the scores' own dtype (float32 from detectors), as numpy does in the
        # reference: float32(0.6) is not > 0.6 there, but it would be after a cast to float64.
        thresh = np.asarray(cfg.track_thresh, dtype=raw_scores.dtype)
        high = raw_scores > thresh
        low = (raw_scores > np.asarray(LOW_SCORE_FLOOR, dtype=raw_scores.dtype)) & (raw_scores < thresh)
        det_scores = raw_scores.astype(np.float64)
        new_thresh = np.asarray(self.new_track_thresh, dtype=raw_scores.dtype)
        # Detection boxes go through tlwh like the reference (tiny float differences matter for exact parity).
        det_tlwh = boxes.copy()
        det_tlwh[:, 2:] -= det_tlwh[:, :2]
        det_tlbr = det_tlwh.copy()
        det_tlbr[:, 2:] += det_tlbr[:, :2]
        hi_tlwh, hi_tlbr, hi_scores = det_tlwh[high], det_tlbr[high], det_scores[high]
        lo_tlwh, lo_tlbr, lo_scores = det_tlwh[low], det_tlbr[low], det_scores[low]

        unconfirmed = [t for t in self._tracked if not t.activated]
        confirmed = [t for t in self._tracked if t.activated]
        seen = {t.track_id for t in confirmed}
        pool = confirmed + [t for t in self._lost if t.track_id not in seen]
        self._predict(pool)

        updates: list[tuple[_Track, F64, float]] = []  # (track, detection tlwh, score): Kalman-updated below
        activated: list[_Track] = []
        refound: list[_Track] = []

        # Stage 1: pool vs high-score detections.
        cost = fuse_score(iou_distance(_tlbrs(pool), hi_tlbr), hi_scores)
        matches, u_pool, u_hi = linear_assignment(cost, cfg.match_thresh)
        for it, idet in matches:
            track = pool[it]
            updates.append((track, hi_tlwh[idet], float(hi_scores[idet])))
            (activated if track.state == TRACKED else refound).append(track)

        # Stage 2: the still-unmatched tracked (not lost) tracks vs low-score detections.
        remaining = [pool[i] for i in u_pool if pool[i].state == TRACKED]
        matches, u_remaining, _ = linear_assignment(iou_distance(_tlbrs(remaining), lo_tlbr), SECOND_STAGE_GATE)
        for it, idet in matches:
            updates.append((remaining[it], lo_tlwh[idet], float(lo_scores[idet])))
            activated.append(remaining[it])
        newly_lost = [remaining[i] for i in u_remaining]
        for track in newly_lost:
            track.state = LOST

        # Unconfirmed tracks vs high-score detections nobody took (unconfirmed boxes are not predicted).
        left_tlwh, left_tlbr, left_scores = hi_tlwh[u_hi], hi_tlbr[u_hi], hi_scores[u_hi]
        left_may_start = raw_scores[high][u_hi] >= new_thresh
        cost = fuse_score(iou_distance(_tlbrs(unconfirmed), left_tlbr), left_scores)
        matches, u_unconf, u_left = linear_assignment(cost, UNCONFIRMED_GATE)
        for it, idet in matches:
            updates.append((unconfirmed[it], left_tlwh[idet], float(left_scores[idet])))
            activated.append(unconfirmed[it])
        removed_now = [unconfirmed[i] for i in u_unconf]
        for track in removed_now:
            track.state = REMOVED

        self._apply_updates(updates, frame_id)

        # New tracks from confident leftovers.
        born = [int(i) for i in u_left if left_may_start[i]]
        if born:
            means, covs = kalman.initiate(kalman.tlwh_to_xyah(left_tlwh[born]))
            for k, i in enumerate(born):
                track = _Track(self._next_id, means[k], covs[k], float(left_scores[i]), frame_id, frame_id == 1)
                self._next_id += 1
                activated.append(track)

        # Lost tracks past the buffer (the list from before this frame, as in the reference).
        for track in self._lost:
            if frame_id - track.frame_id > self.max_time_lost:
                track.state = REMOVED
                removed_now.append(track)

        self._merge_lists(activated, refound, newly_lost, removed_now)
        out = [t for t in self._tracked if t.activated]
        if cfg.min_box_area > 0 and out:
            tlwh = kalman.xyah_to_tlwh(np.stack([t.mean for t in out]))
            out = [t for t, area in zip(out, tlwh[:, 2] * tlwh[:, 3], strict=True) if area > cfg.min_box_area]
        return out

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _check_input(boxes_xyxy: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[F64, npt.NDArray[np.floating]]:
        """Boxes as float64 (an exact widening of float32 detector output, like the reference's STrack);
        scores keep their float dtype for the threshold comparisons."""
        boxes = np.asarray(boxes_xyxy, dtype=np.float64)
        det_scores = np.asarray(scores)
        if not np.issubdtype(det_scores.dtype, np.floating):
            det_scores = det_scores.astype(np.float64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes_xyxy must have shape (N, 4), got {boxes.shape}")
        det_scores = det_scores.reshape(-1)
        if det_scores.shape[0] != boxes.shape[0]:
            raise ValueError(f"got {boxes.shape[0]} boxes but {det_scores.shape[0]} scores; pass one score per box")
        return boxes, det_scores

    @staticmethod
    def _predict(pool: list[_Track]) -> None:
        if not pool:
            return
        means = np.stack([t.mean for t in pool])
        covs = np.stack([t.cov for t in pool])
        not_tracked = np.fromiter((t.state != TRACKED for t in pool), bool, len(pool))
        means[not_tracked, 7] = 0.0  # lost tracks keep moving but stop growing/shrinking
        means, covs = kalman.predict(means, covs)
        for k, t in enumerate(pool):
            t.mean, t.cov = means[k], covs[k]

    @staticmethod
    def _apply_updates(updates: list[tuple[_Track, F64, float]], frame_id: int) -> None:
        """Kalman-correct every matched track at once; each track appears at most once per frame."""
        if not updates:
            return
        tracks = [u[0] for u in updates]
        means, covs = kalman.update(
            np.stack([t.mean for t in tracks]),
            np.stack([t.cov for t in tracks]),
            kalman.tlwh_to_xyah(np.stack([u[1] for u in updates])),
        )
        for k, (t, _, score) in enumerate(updates):
            t.mean, t.cov = means[k], covs[k]
            t.score = score
            t.state = TRACKED
            t.activated = True
            t.frame_id = frame_id

    def _merge_lists(
        self, activated: list[_Track], refound: list[_Track], newly_lost: list[_Track], removed_now: list[_Track]
    ) -> None:
        """End-of-frame list bookkeeping, in the reference's order (it decides which duplicates and ids survive)."""
        tracked = [t for t in self._tracked if t.state == TRACKED]
        ids = {t.track_id for t in tracked}
        for t in activated + refound:
            if t.track_id not in ids:
                ids.add(t.track_id)
                tracked.append(t)
        lost_by_id = {t.track_id: t for t in self._lost if t.track_id not in ids}
        for t in newly_lost:
            lost_by_id[t.track_id] = t
        lost = [t for tid, t in lost_by_id.items() if tid not in self._removed_ids]  # the *old* removed set
        self._removed_ids.update(t.track_id for t in removed_now)
        self._tracked, self._lost = self._drop_duplicates(tracked, lost)

    @staticmethod
    def _drop_duplicates(tracked: list[_Track], lost: list[_Track]) -> tuple[list[_Track], list[_Track]]:
        if not tracked or not lost:
            return tracked, lost
        dist = iou_distance(_tlbrs(tracked), _tlbrs(lost))
        drop_tracked: set[int] = set()
        drop_lost: set[int] = set()
        for p, q in zip(*np.nonzero(dist < DUPLICATE_IOU_DISTANCE), strict=True):
            age_p = tracked[p].frame_id - tracked[p].start_frame
            age_q = lost[q].frame_id - lost[q].start_frame
            if age_p > age_q:
                drop_lost.add(int(q))
            else:
                drop_tracked.add(int(p))
        return (
            [t for i, t in enumerate(tracked) if i not in drop_tracked],
            [t for i, t in enumerate(lost) if i not in drop_lost],
        )
