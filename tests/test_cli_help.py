"""`--help` output users read: every option explained, defaults shown, bench says how long it takes."""

from __future__ import annotations

import argparse

import pytest

from jobs.cli import build_parser, main


def _subparser(command: str) -> argparse.ArgumentParser:
    parser, _ = build_parser([command])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


@pytest.mark.parametrize("command", ["bench", "track"])
def test_every_option_has_help(command: str) -> None:
    p = _subparser(command)
    missing = [a.option_strings for a in p._actions if a.option_strings and a.help in (None, "")]
    assert not missing, f"{command}: options without help: {missing}"


def test_bench_help_estimates_its_run_time(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "Run time" in out and "70 x frames / (pipeline frames/s)" in out and "about 5-6 minutes" in out


def test_track_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["track", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for option, default in (("--track-thresh", "0.6"), ("--match-thresh", "0.8"), ("--track-buffer", "30"),
                            ("--min-box-area", "0.0"), ("--segments", "1")):
        i = out.rindex(option + " ")  # the options list, after the usage line
        assert f"(default {default})" in out[i:i + 250], (option, out[i:i + 250])
    assert "--detections PARQUET" in out
