"""GUI-thread stalls while the engine generates, in the real main window with the demo model.

    QT_QPA_PLATFORM=offscreen python benchmarks/ui_latency.py [--frames 64] [--jobs 3]

A 5 ms QTimer on the GUI thread records the gap between its ticks: first while idle (the
baseline), then while jobs stream frames into the preview and timeline. Prints the longest gap,
the 99th percentile and the count of gaps over 100 ms for both, in the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402
from PySide6.QtCore import QTimer  # noqa: E402

from app.__main__ import create_app  # noqa: E402


def measure(app, seconds: float | None, until=None) -> np.ndarray:
    gaps, last = [], [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    timer.start()
    t0 = time.perf_counter()
    while (seconds is not None and time.perf_counter() - t0 < seconds) or (until and not until()):
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    return np.array(gaps[1:]) * 1000


def report(name: str, gaps: np.ndarray) -> None:
    print(
        f"{name:>10}: {len(gaps):5d} ticks  max {gaps.max():6.1f} ms  p99 {np.percentile(gaps, 99):6.1f} ms"
        f"  over 100 ms: {(gaps > 100).sum()}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--jobs", type=int, default=3)
    args = ap.parse_args()
    app = create_app(["bench"])
    from app.main_window import MainWindow
    from app.studio import Studio
    from app_utils import isolated_settings

    folder = Path(tempfile.mkdtemp())
    studio = Studio(isolated_settings(folder))
    window = MainWindow(studio)
    window.show()
    studio.start()
    while not studio.engine_ready:
        app.processEvents()
        time.sleep(0.01)
    idle = measure(app, 3.0)
    studio.draft.set(
        prompt="a large red circle moves right on a black background", frames=args.frames
    )
    for seed in range(args.jobs):
        studio.draft.set(seed=seed)
        studio.generate()
    t0 = time.perf_counter()
    busy = measure(app, None, until=lambda: not studio.busy)
    elapsed = time.perf_counter() - t0
    print(
        f"{args.jobs} jobs x {args.frames} frames in {elapsed:.1f} s ({args.jobs * args.frames / elapsed:.1f} frames/s)"
    )
    report("idle", idle)
    report("generating", busy)
    window.shutdown()


if __name__ == "__main__":
    main()
