"""The README's screenshot: the real main window during a generation, under Xvfb, on a 1280 x 720
screen (a common laptop's; the window fills it as it does on first start there).

xvfb-run -s "-screen 0 1280x720x24" python scripts/screenshot.py docs/screenshot.png
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the packages (not installed) and app_utils

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from app.__main__ import create_app  # noqa: E402
from engine.demo.world import caption, random_scene, render  # noqa: E402


def main(out: str) -> None:
    app = create_app(["screenshot"])
    from app.main_window import MainWindow
    from app.studio import Studio
    from app_utils import isolated_settings

    folder = Path(tempfile.mkdtemp())
    studio = Studio(isolated_settings(folder))
    window = MainWindow(studio)
    window.show()
    studio.start()

    def pump(until, limit: float = 120.0) -> None:
        t0 = time.time()
        while not until() and time.time() - t0 < limit:
            app.processEvents()
            time.sleep(0.005)

    pump(lambda: studio.engine_ready)
    scene = random_scene(np.random.default_rng(7), 2)
    clip = folder / "shapes.mp4"
    from engine.media import VideoWriter

    with VideoWriter(clip, 16, 64, 48) as w:
        w.write(render(scene, 48))
    studio.import_video(clip)
    pump(lambda: len(studio.timeline.clips) == 1)
    start = folder / "start.png"
    cv2.imwrite(str(start), render(scene, 1)[0][:, :, ::-1])
    studio.draft.set(prompt=caption(scene), frames=64, seed=3)
    studio.load_image(start, generate=False)  # the start image, then its job
    pump(lambda: studio.draft.image is not None)
    shown = {"live": -1}
    window.preview.frame_shown.connect(lambda kind, i: shown.__setitem__(kind, i))
    studio.generate()
    pump(lambda: shown["live"] >= 19)  # the preview has painted the job's 20th frame
    window.timeline_view.fit()  # the imported clip and the one being made, whole
    window.statusBar().clearMessage()
    for _ in range(5):
        app.processEvents()
    window.grab().save(out)
    size = window.grab().size()
    print(f"saved {out} ({size.width()} x {size.height()})")
    studio.cancel()
    pump(lambda: not studio.busy)
    window.shutdown()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshot.png")
