"""The stages: plain Python classes with `setup()` and `process()`, run unchanged by both executors.

Each `process()` takes one item and returns `(StageReport, output)`; the report is the small record the
executor reads (frames, busy time, last batch, a typed failure), the output goes to the next stage.
"""
