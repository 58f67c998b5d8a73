"""python -m engine.eval shapes: the scorer's ceiling on ground truth, and the demo model scored."""

from __future__ import annotations

import json

import numpy as np

from engine.eval import evaluate, main, table
from engine.pipeline import load_pipeline


def test_ground_truth_is_the_ceiling(capsys, tmp_path):
    out = tmp_path / "cases.json"
    assert (
        main(
            [
                "shapes",
                "--truth-only",
                "--n",
                "12",
                "--long",
                "2",
                "--long-frames",
                "60",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "| text to video | 12 | follows caption |" in text and "ground truth" in text
    cases = json.loads(out.read_text())
    assert set(cases) == {"t2v", "i2v", "edit", "long"}
    for task in ("t2v", "i2v", "edit", "long"):
        assert np.mean([c["ok"] for c in cases[task]["truth"]]) >= 0.9, task
    assert min(c["value"] for c in cases["edit"]["truth"]) == 100.0  # nothing else changed
    assert max(c["value"] for c in cases["long"]["truth"]) == 0.0  # no drift in a render


def test_the_demo_model_goes_through_every_task():
    pipeline = load_pipeline(None, "cpu")
    results = evaluate(pipeline, n=2, n_long=1, long_frames=40)
    for task, r in results.items():
        assert len(r.model) == len(r.truth) == (1 if task == "long" else 2)
    assert all(c.first_s is not None and c.total_s >= c.first_s for c in results["t2v"].model)
    assert all(c.value == 100.0 for c in results["i2v"].model)  # frame 0 is the given image
    assert "speed (t2v, median)" in table(results, 40)


def test_unknown_task_is_refused(capsys):
    assert main(["shapes", "--truth-only", "--tasks", "t2v,dance"]) == 2
    assert "dance" in capsys.readouterr().err
