"""Class names: the COCO-80 list, a model's names, and `detector.classes` given as names or ids.

No imports beyond the standard library: models/build_nanodet.py reads COCO80 from here in its build venv.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence

# The 80 COCO detection classes in the order COCO-trained detectors (YOLOv8/YOLO11, NanoDet) number them.
COCO80: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip

# What a video-analytics user tracks: people and road vehicles. The bundled model's default class set;
# `detector.classes: all` keeps all 80 (a user's own model keeps all its classes by default).
PEOPLE_AND_VEHICLES: tuple[str, ...] = ("person", "bicycle", "car", "motorcycle", "bus", "truck")

ALL = "all"


def names_from_metadata(metadata: Mapping[str, str], num_classes: int) -> tuple[str, ...]:
    """A model's class names, id order: Ultralytics' `names` metadata ("{0: 'person', ...}") when present and
    complete, else COCO-80 for an 80-class model, else "class_<id>"."""
    raw = metadata.get("names", "")
    if raw:
        try:
            parsed = ast.literal_eval(raw)  # a Python dict literal, as Ultralytics writes it; never eval()
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, dict) and sorted(parsed) == list(range(num_classes or len(parsed))):
            return tuple(str(parsed[i]) for i in sorted(parsed))
    if num_classes == len(COCO80):
        return COCO80
    return tuple(f"class_{i}" for i in range(num_classes))


def resolve_classes(wanted: Iterable[int | str], names: Sequence[str]) -> tuple[int, ...]:
    """`detector.classes` entries (ids, names, or numeric strings from the command line) -> sorted class ids.

    Empty or "all" -> () (keep every class). Raises ValueError naming the unknown entries and the valid names.
    """
    items = [w.strip() if isinstance(w, str) else w for w in wanted]
    if not items or any(isinstance(w, str) and w.lower() == ALL for w in items):
        return ()
    index = {n.lower(): i for i, n in enumerate(names)}
    ids: set[int] = set()
    unknown: list[str] = []
    for w in items:
        if isinstance(w, int) or (isinstance(w, str) and w.isdigit()):
            i = int(w)
            if names and not 0 <= i < len(names):
                unknown.append(str(w))
            ids.add(i)
        elif isinstance(w, str) and w.lower() in index:
            ids.add(index[w.lower()])
        else:
            unknown.append(repr(w))
    if unknown:
        shown = ", ".join(list(names)[:12]) + (", ..." if len(names) > 12 else "")
        raise ValueError(
            f"detector.classes: unknown class {', '.join(unknown)}; this model has {len(names)} classes "
            f"({shown}), given by name or id, or 'all'"
        )
    return tuple(sorted(ids))


def class_name(names: Sequence[str], class_id: int) -> str:
    return names[class_id] if 0 <= class_id < len(names) else f"class_{class_id}"
