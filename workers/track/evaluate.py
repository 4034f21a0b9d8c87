"""Score MOTChallenge results against ground truth with TrackEval (HOTA, CLEAR/MOTA, Identity/IDF1).

We use TrackEval's own `MotChallenge2DBox` dataset rather than its metric classes on our own parsing, because
its preprocessing is the official MOTChallenge one and easy to get subtly wrong: only gt rows of class 1
(pedestrian) with consider flag 1 are targets; tracker boxes matched (IoU >= 0.5) to distractor gt (classes
2 person on vehicle, 7 static person, 8 distractor, 12 reflection) are removed before scoring, and zero-marked
gt rows are ignored. That dataset class reads a fixed folder layout, so `evaluate` builds one in a temporary
directory out of symlinks (gt) and copies (results), with SKIP_SPLIT_FOL and explicit sequence lengths.

    python -m workers.track.evaluate --gt-root ../shared/data/mot17 --results DIR   # DIR/<seq>.txt
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workers.track.mot_io import read_results

TRACKEVAL_INSTALL = (
    "pip install 'vidpipe[eval]' && pip install --no-deps trackeval==1.3.0 (--no-deps because trackeval declares "
    "opencv-python, which would replace opencv-python-headless with a build without the HOG detector)"
)


def require_trackeval() -> None:
    """Fail before tracking, with the install line, when results cannot be scored."""
    if importlib.util.find_spec("trackeval") is None:
        raise ValueError(f"--gt scores with TrackEval, which is not installed here: {TRACKEVAL_INSTALL}")


@dataclass(frozen=True)
class SequenceInput:
    name: str
    gt_path: Path
    result_path: Path
    seq_length: int


SUMMARY_KEYS = ("HOTA", "DetA", "AssA", "MOTA", "MOTP", "IDF1", "IDSW", "FP", "FN", "Frag")


def _summarise(res: dict[str, Any]) -> dict[str, float | int]:
    """TrackEval's nested per-class result -> flat figures (percentages for ratios, counts as ints)."""
    hota, clear, ident = res["HOTA"], res["CLEAR"], res["Identity"]
    return {
        "HOTA": 100 * float(np.mean(hota["HOTA"])),  # averaged over the 19 localisation thresholds
        "DetA": 100 * float(np.mean(hota["DetA"])),
        "AssA": 100 * float(np.mean(hota["AssA"])),
        "MOTA": 100 * float(clear["MOTA"]),
        "MOTP": 100 * float(clear["MOTP"]),
        "IDF1": 100 * float(ident["IDF1"]),
        "IDSW": int(clear["IDSW"]),
        "FP": int(clear["CLR_FP"]),
        "FN": int(clear["CLR_FN"]),
        "Frag": int(clear["Frag"]),
    }


def evaluate(
    sequences: list[SequenceInput], tracker_name: str = "vidpipe", verbose: bool = False
) -> dict[str, dict[str, float | int]]:
    """Per-sequence figures plus "COMBINED" (TrackEval's combination over all sequences, not a mean)."""
    import trackeval  # imported here: only evaluation needs it

    if not sequences:
        raise ValueError("no sequences to evaluate")
    with tempfile.TemporaryDirectory(prefix="vidpipe-trackeval-") as tmp:
        root = Path(tmp)
        gt_root, tr_root = root / "gt", root / "trackers"
        for seq in sequences:
            for path, what in ((seq.gt_path, "gt"), (seq.result_path, "results")):
                if not Path(path).is_file():
                    raise FileNotFoundError(f"{what} file for {seq.name} not found: {path}")
            (gt_root / seq.name / "gt").mkdir(parents=True)
            (gt_root / seq.name / "gt" / "gt.txt").symlink_to(Path(seq.gt_path).resolve())
            (tr_root / tracker_name / "data").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(seq.result_path, tr_root / tracker_name / "data" / f"{seq.name}.txt")
        eval_config = {
            "USE_PARALLEL": False,
            "PRINT_RESULTS": verbose,
            "PRINT_CONFIG": False,
            "TIME_PROGRESS": False,
            "OUTPUT_SUMMARY": False,
            "OUTPUT_DETAILED": False,
            "PLOT_CURVES": False,
            "LOG_ON_ERROR": None,
        }
        dataset_config = {
            "GT_FOLDER": str(gt_root),
            "TRACKERS_FOLDER": str(tr_root),
            "OUTPUT_FOLDER": str(root / "out"),
            "TRACKERS_TO_EVAL": [tracker_name],
            "BENCHMARK": "MOT17",
            "SKIP_SPLIT_FOL": True,
            "SEQ_INFO": {s.name: s.seq_length for s in sequences},
            "PRINT_CONFIG": False,
        }
        quiet = {"PRINT_CONFIG": False}
        metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(quiet), trackeval.metrics.Identity(quiet)]
        evaluator = trackeval.Evaluator(eval_config)
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink) if not verbose else contextlib.nullcontext():
            results, messages = evaluator.evaluate([trackeval.datasets.MotChallenge2DBox(dataset_config)], metrics)
        per_seq = results["MotChallenge2DBox"][tracker_name]
        if not isinstance(per_seq, dict) or "COMBINED_SEQ" not in per_seq:
            raise RuntimeError(f"TrackEval failed: {messages}\n{sink.getvalue()[-2000:]}")
        return {name: _summarise(res["pedestrian"]) for name, res in per_seq.items() if name != "COMBINED_SEQ"} | {
            "COMBINED": _summarise(per_seq["COMBINED_SEQ"]["pedestrian"])
        }


def evaluate_files(
    gt_path: str | Path, result_path: str | Path, seq_length: int | None = None
) -> dict[str, float | int]:
    """Score one result file; the sequence length defaults to the last frame seen in gt or results."""
    if seq_length is None:
        frames = [read_results(p)[:, 0] for p in (gt_path, result_path)]
        seq_length = int(max((f.max() for f in frames if f.size), default=1))
    name = Path(gt_path).resolve().parent.parent.name or "seq"
    return evaluate([SequenceInput(name, Path(gt_path), Path(result_path), seq_length)])[name]


def format_table(rows: dict[str, dict[str, float | int]]) -> str:
    head = f"{'':28s}" + "".join(f"{k:>8s}" for k in SUMMARY_KEYS)
    lines = [head]
    for name, m in rows.items():
        cells = "".join(f"{m[k]:8.2f}" if isinstance(m[k], float) else f"{m[k]:8d}" for k in SUMMARY_KEYS)
        lines.append(f"{name:28s}{cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from workers.track.mot_io import read_seqinfo

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gt-root", type=Path, required=True, help="folder of <seq>/gt/gt.txt + seqinfo.ini")
    parser.add_argument("--results", type=Path, required=True, help="folder of <seq>.txt result files")
    args = parser.parse_args(argv)
    seqs = [
        SequenceInput(
            p.stem,
            args.gt_root / p.stem / "gt" / "gt.txt",
            p,
            read_seqinfo(args.gt_root / p.stem / "seqinfo.ini").seq_length,
        )
        for p in sorted(args.results.glob("*.txt"))
        if (args.gt_root / p.stem / "gt" / "gt.txt").is_file()
    ]
    if not seqs:
        raise SystemExit(f"no <seq>.txt in {args.results} has a matching {args.gt_root}/<seq>/gt/gt.txt")
    print(format_table(evaluate(seqs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
