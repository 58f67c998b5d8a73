"""Command line: `python -m engine generate | batch | convert | models`.

    python -m engine generate --prompt "a red circle moves left on a black background" --out clip.mp4
    python -m engine generate --prompt "..." --image start.png --frames 48 --out i2v.mp4
    python -m engine generate --prompt "(v2v) remove the red circle" --video src.mp4 --out edit.mp4
    python -m engine batch jobs.jsonl --out-dir renders/
    python -m engine convert starflow.pth [--out starflow.safetensors]
    python -m engine models list | download flow|text-encoder|vae|all --accept-license | verify

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
    seed, cfg = _number(job, "seed", int, 0), _number(job, "cfg", float, pipeline.info.guidance)
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
    snapped = pipeline.snap_frames(frames, mode)
    if snapped != frames:
        log.warning("%d frames asked: this model's video codec makes %d", frames, snapped)
        frames = snapped
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
        context=args.context,
        aspect_ratio=args.aspect,
        config=args.config,
        text_encoder=args.text_encoder,
        vae=args.vae,
        models_dir=args.models_dir,
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


def _managers(args: argparse.Namespace) -> dict[str, Any]:
    """Part name -> its manager (the flow's ModelManager, the parts' PartManager)."""
    from .starflow_v.hub import HubSource, ModelManager
    from .starflow_v.parts import PARTS, PartManager

    flow = ModelManager(args.models_dir, HubSource(endpoint=args.endpoint))
    parts = {k: PartManager(args.models_dir, p, endpoint=args.endpoint) for k, p in PARTS.items()}
    return {"flow": flow, **parts}


def _gb(n: int) -> str:
    """Bytes for people: GB, MB or kB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n / 1e3:.1f} kB"


def cmd_models(args: argparse.Namespace) -> None:
    managers = _managers(args)
    chosen = list(managers) if args.part in (None, "all") else [args.part]
    if args.action == "list":
        for name in chosen:
            sys.stdout.write(_describe(name, managers[name]) + "\n")
        return
    for name in chosen:
        manager = managers[name]
        if args.action == "verify":
            done = manager.local()
            if done is None:
                raise EngineError(
                    f"{name} is not downloaded: python -m engine models download {name}"
                )
            log.info("%s: %s checked", name, manager.use_local(done))
            continue
        if manager.local() is None:
            log.info("%s licence:\n%s", name, manager.license_text().strip())
            if not args.accept_license:
                raise EngineError(
                    f"read the licence above, then add --accept-license to download {name}"
                )
        path = manager.fetch(accept_license=True, progress=_progress_log(name))
        log.info("%s: ready at %s", name, path)


def _describe(name: str, manager) -> str:
    """One line: part, repo, where it is on disk or what is left to download."""
    done = manager.local()
    head = f"{name:13} {manager.source.repo_id:34}"
    if done is not None:
        return f"{head} downloaded: {done}"
    try:
        missing, whole = manager.size()
    except EngineError as exc:
        offline = "offline mode is on" in str(exc)
        return f"{head} not downloaded (size unknown: {'offline' if offline else exc})"
    return f"{head} not downloaded: {_gb(missing)} of {_gb(whole)} to fetch into {manager.folder}"


def _progress_log(name: str):
    last = [-1]

    def report(done: int, total: int | None) -> None:
        step = int(20 * done / total) if total else -1
        if step != last[0]:
            last[0] = step
            log.info("%s: %s of %s", name, _gb(done), _gb(total) if total else "?")

    return report


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m engine",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)

    def models_dir(p: argparse.ArgumentParser) -> None:
        from .starflow_v.loader import DEFAULT_MODELS_DIR

        p.add_argument(
            "--models-dir", type=Path, default=DEFAULT_MODELS_DIR, help="7B: where downloads go"
        )

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
        p.add_argument(
            "--context",
            type=int,
            default=None,
            help="7B: latent frames re-encoded when the window slides (default 16)",
        )
        p.add_argument("--aspect", default=None, help="7B: aspect ratio, e.g. 16:9")
        p.add_argument(
            "--text-encoder", default=None, help="7B: T5 folder or Hub repo (default: flan-t5-xl)"
        )
        p.add_argument(
            "--vae", default=None, help="7B: Wan2.2 VAE folder, Wan2.2_VAE.pth or Hub repo"
        )
        models_dir(p)
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
    g.add_argument(
        "--cfg", type=float, default=None, help="guidance weight (default: the model's; 7B 3.5)"
    )
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

    m = sub.add_parser("models", help="the 7B's parts: list, download or verify them")
    m.add_argument("action", choices=("list", "download", "verify"))
    m.add_argument(
        "part", nargs="?", choices=("flow", "text-encoder", "vae", "all"), help="default: all"
    )
    m.add_argument("--accept-license", action="store_true", help="accept the licences shown")
    m.add_argument("--endpoint", default=None, help="Hub endpoint or mirror (default: HF_ENDPOINT)")
    models_dir(m)
    m.set_defaults(func=cmd_models)
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
