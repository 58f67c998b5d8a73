"""Command line: `python -m engine generate | batch | convert`.

    python -m engine generate --prompt "a red circle moves left on a black background" --out clip.mp4
    python -m engine generate --prompt "..." --image start.png --frames 48 --out i2v.mp4
    python -m engine generate --prompt "(v2v) remove the red circle" --video src.mp4 --out edit.mp4
    python -m engine batch jobs.jsonl --out-dir renders/
    python -m engine convert starflow.pth [--out starflow.safetensors]

Frames are written to the file as they are produced; the file appears under its final name only
when complete. Bad input exits with status 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .api import TASK_PREFIX, Cancelled, EngineError, GenerateRequest

log = logging.getLogger("engine.cli")
JOB_FIELDS = {"prompt", "image", "video", "frames", "seed", "cfg", "temperature", "out"}


def _number(job: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    """job[key] as a finite int / float (`default` where absent or null); EngineError otherwise."""
    value = job.get(key)
    if value is None:
        return default
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        number = float(value)
        if not math.isfinite(number) or (kind is int and not number.is_integer()):
            raise ValueError
    except ValueError:
        wanted = "an integer" if kind is int else "a number"
        raise EngineError(f"{key} must be {wanted}, got {value!r}") from None
    return int(number) if kind is int else number


def request_from(job: dict[str, Any], pipeline) -> GenerateRequest:
    """A job (CLI flags or one JSONL line) -> GenerateRequest; the task follows the inputs/prefix."""
    from . import media

    unknown = set(job) - JOB_FIELDS
    if unknown:
        raise EngineError(f"unknown job field(s): {', '.join(sorted(unknown))}")
    prompt = str(job.get("prompt") or "").strip()
    if not prompt:
        raise EngineError("a prompt is required")
    frames = _number(job, "frames", int, 0)
    seed, cfg = _number(job, "seed", int, 0), _number(job, "cfg", float, 2.5)
    temperature = _number(job, "temperature", float, None)
    image = video = None
    mode = "t2v"
    for name in ("v2v", "extend"):
        if prompt.startswith(TASK_PREFIX[name]):
            mode, prompt = name, prompt[len(TASK_PREFIX[name]) :]
    if job.get("image"):
        if mode != "t2v":
            raise EngineError("--image goes with a plain caption (image to video)")
        image, mode = media.read_image(job["image"]), "i2v"
    if job.get("video"):
        video, _ = media.read_video(job["video"])
        if mode == "t2v":
            mode = "extend"
    elif mode in ("v2v", "extend"):
        raise EngineError(f"a {mode} prompt needs --video")
    if frames < 0:
        raise EngineError(f"frames must be positive (0: the model's clip length), got {frames}")
    if frames == 0:
        frames = len(video) if mode == "v2v" else pipeline.info.train_frames
    return GenerateRequest(
        prompt=prompt,
        mode=mode,
        frames=frames,
        seed=seed,
        guidance=cfg,
        temperature=temperature,
        image=image,
        video=video,
    )


def render(
    pipeline, request: GenerateRequest, out: Path, cancel: threading.Event | None = None
) -> int:
    """Stream a request's frames into `out` (atomic); returns the number of frames written."""
    from . import media

    info = pipeline.info
    meta = {
        "prompt": request.text,
        "seed": str(request.seed),
        "model": info.name,
        "guidance": str(request.guidance),
        "temperature": str(pipeline.temperature(request)),
    }
    writer = media.VideoWriter(out, info.fps, info.width, info.height, meta)
    t0, written = time.perf_counter(), 0
    try:
        for event in pipeline.generate(request, cancel):
            writer.write(event.frames)
            written = event.done
            if written == len(event.frames) + event.start and event.start == 0:
                log.info("first frame after %.2f s", time.perf_counter() - t0)
            log.info(
                "%s: %d/%d frames (%.1f fps)",
                out.name,
                event.done,
                event.total,
                written / max(time.perf_counter() - t0, 1e-9),
            )
    except BaseException:
        writer.abort()
        raise
    writer.close()
    log.info("wrote %s: %d frames in %.2f s", out, written, time.perf_counter() - t0)
    return written


def _load(args: argparse.Namespace):
    from .registry import load_pipeline

    return load_pipeline(
        args.model,
        args.device,
        args.dtype,
        accept_license=args.accept_license,
        offload=args.offload,
        window=args.window,
        aspect_ratio=args.aspect,
        config=args.config,
    )


def cmd_generate(args: argparse.Namespace) -> None:
    pipeline = _load(args)
    job = {
        "prompt": args.prompt,
        "image": args.image,
        "video": args.video,
        "frames": args.frames,
        "seed": args.seed,
        "cfg": args.cfg,
        "temperature": args.temperature,
    }
    render(pipeline, request_from(job, pipeline), Path(args.out))


def cmd_batch(args: argparse.Namespace) -> None:
    lines = Path(args.jobs).read_text().splitlines()
    jobs = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                jobs.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise EngineError(f"{args.jobs}:{n}: not valid JSON ({exc.msg})") from exc
            if not isinstance(jobs[-1], dict):
                raise EngineError(f"{args.jobs}:{n}: each line must be a JSON object")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pipeline = _load(args)
    failures = 0
    for n, job in enumerate(jobs, 1):
        out = out_dir / (job.get("out") or f"job_{n:04d}.mp4")
        try:
            render(pipeline, request_from(job, pipeline), out)
        except EngineError as exc:
            failures += 1
            log.error("job %d (%s): %s", n, out.name, exc)
    if failures:
        raise EngineError(f"{failures} of {len(jobs)} jobs failed")


def cmd_convert(args: argparse.Namespace) -> None:
    from .checkpoint import convert_to_safetensors

    out = convert_to_safetensors(args.checkpoint, args.out)
    log.info("wrote %s", out)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m engine",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)

    def model_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--model",
            default=None,
            help="model bundle JSON, checkpoint, or hub repo (default: demo)",
        )
        p.add_argument("--device", default="auto")
        p.add_argument("--dtype", default="auto", help="auto, fp32 or bf16")
        p.add_argument(
            "--accept-license",
            action="store_true",
            help="accept the STARFlow model licence (download)",
        )
        p.add_argument(
            "--offload",
            action="store_true",
            default=None,
            help="7B: keep shallow blocks and denoiser in CPU memory between uses",
        )
        p.add_argument(
            "--window", type=int, default=None, help="7B: attention window in latent frames"
        )
        p.add_argument("--aspect", default=None, help="7B: aspect ratio, e.g. 16:9")
        p.add_argument(
            "--config", default=None, help="STARFlow-V: the checkpoint's config (.yaml or .json)"
        )

    g = sub.add_parser("generate", help="render one clip")
    g.add_argument("--prompt", required=True)
    g.add_argument("--image", help="start frame (image to video)")
    g.add_argument("--video", help="source clip (with a (v2v) or (extend) prompt)")
    g.add_argument(
        "--frames", type=int, default=0, help="frames to produce (default: training length)"
    )
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--cfg", type=float, default=2.5, help="classifier-free guidance weight")
    g.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="sampling noise scale, below 1 nearer the model's mode (default: the model's own)",
    )
    g.add_argument("--out", required=True)
    model_args(g)
    g.set_defaults(func=cmd_generate)

    b = sub.add_parser("batch", help="render every job of a JSONL file, loading the model once")
    b.add_argument("jobs")
    b.add_argument("--out-dir", required=True)
    model_args(b)
    b.set_defaults(func=cmd_batch)

    c = sub.add_parser("convert", help="convert a .pth checkpoint to .safetensors")
    c.add_argument("checkpoint")
    c.add_argument("--out", default=None)
    c.set_defaults(func=cmd_convert)
    return ap


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except (EngineError, OSError) as exc:
        log.error("error: %s", exc)
        return 2
    except (KeyboardInterrupt, Cancelled):
        log.error("cancelled")
        return 130
    return 0
