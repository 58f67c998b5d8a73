"""End to end at the released 7B's widths through the real command line, bigger than
tests/test_true_widths.py: a random STARFlow-V with the 7B's channels (3072, top block 4096), 48
latent channels, text width 2048 and denoiser window 10, at reduced depth, beside a T5 folder of
width 2048 and a tiny Wan VAE folder. Prints seconds per mode (each a whole `generate` call:
loading the parts and the flow, sampling, decoding, writing the mp4) and the clip it wrote.

    python benchmarks/true_widths_e2e.py                           # CPU: 2 layers per block
    python benchmarks/true_widths_e2e.py --frames 33 --img-size 6 --device cuda
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_true_widths import read_frames, write_true_width_model  # noqa: E402

from engine.cli import main  # noqa: E402


def run(model: Path, out: Path, prompt: str, frames: int, device: str, *extra: str) -> float:
    args = ["generate", "--model", str(model), "--prompt", prompt, "--frames", str(frames)]
    t0 = time.perf_counter()
    if main([*args, "--device", device, *extra, "--out", str(out)]) != 0:
        raise SystemExit(f"{out.name}: generate failed")
    return time.perf_counter() - t0


def main_() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--frames", type=int, default=17, help="frames of the t2v/i2v/window clips")
    ap.add_argument("--layers", type=int, default=2, help="layers per block (and denoiser)")
    ap.add_argument("--img-size", type=int, default=4, help="latent side (pixels / 16)")
    ap.add_argument("--window", type=int, default=2, help="latent frames of the sliding window")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        model = write_true_width_model(root, args.img_size, args.layers)
        print(f"checkpoint written: {time.perf_counter() - t0:.1f} s")
        image = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
        import cv2

        cv2.imwrite(str(root / "start.png"), image)
        t2v, n = root / "t2v.mp4", args.frames
        modes = [
            ("t2v", t2v, "a red circle moves left", n, ()),
            ("i2v", root / "i2v.mp4", "a circle", n, ("--image", str(root / "start.png"))),
            ("extend", root / "ext.mp4", "(extend) a circle", 8, ("--video", str(t2v))),
            ("v2v", root / "edit.mp4", "(v2v) remove the circle", n, ("--video", str(t2v))),
            ("window", root / "slid.mp4", "a red circle", n, ("--window", str(args.window))),
        ]
        for name, out, prompt, frames, extra in modes:
            seconds = run(model, out, prompt, frames, args.device, *extra)
            clip = read_frames(out)
            t, h, w, _ = clip.shape
            print(f"{name:7s} {seconds:7.1f} s  {t} frames of {w}x{h}, pixel std {clip.std():.1f}")


if __name__ == "__main__":
    main_()
