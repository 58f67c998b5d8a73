"""Command line: `python -m engine generate | batch | convert | models`.

    python -m engine generate --prompt "a red circle moves left on a black background" --out clip.mp4
    python -m engine generate --prompt "..." --image start.png --frames 48 --out i2v.mp4
    python -m engine generate --prompt "(v2v) remove the red circle" --video src.mp4 --out edit.mp4
    python -m engine batch jobs.jsonl --out-dir renders/
    python -m engine convert starflow.pth [--out starflow.safetensors]
    python -m engine models list | download flow|text-encoder|vae|all --accept-license | verify

Frames are written to the file as they are produced; the file appears under its final name only
when complete. Bad input exits with status 2 and one line naming the file or field; SIGTERM and
SIGHUP stop a run as Ctrl-C does (status 143 / 129, no half-written file); an unexpected error is
one line too (`python -m engine --debug ...` shows its traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .api import TASK_PREFIX, Cancelled, EngineError, GenerateRequest
from .jobs import Job, batch_outputs, check_output, parse_job, read_batch

log = logging.getLogger("engine.cli")


def request_from(job: dict[str, Any] | Job, pipeline) -> GenerateRequest:
    """A job -> GenerateRequest; the task follows the inputs/prefix; limits checked before the
    inputs are read or anything is generated."""
    from . import media
    from .limits import check_request

    if not isinstance(job, Job):
        job = parse_job(job)
    prompt, frames, mode = job.prompt, job.frames, "t2v"
    cfg = pipeline.info.guidance if job.cfg is None else job.cfg
    image = video = None
    for name in ("v2v", "extend"):
        if prompt.startswith(TASK_PREFIX[name]):
            mode, prompt = name, prompt[len(TASK_PREFIX[name]) :]
    if job.image:
        if mode != "t2v":
            raise EngineError("--image goes with a plain caption (image to video)")
        mode = "i2v"
    if not job.video and mode in ("v2v", "extend"):
        raise EngineError(f"a {mode} prompt needs --video")
    if frames:
        check_request(pipeline, frames)
    if job.image:
        image = media.read_image(job.image)
    if job.video:
        video, _ = media.read_video(job.video)
        mode = "extend" if mode == "t2v" else mode
    if frames == 0:
        frames = len(video) if mode == "v2v" else pipeline.info.train_frames
    snapped = pipeline.snap_frames(frames, mode)
    if snapped != frames:
        log.warning("%d frames asked: this model's video codec makes %d", frames, snapped)
        frames = snapped
    check_request(pipeline, frames, 0 if video is None else len(video))
    return GenerateRequest(
        prompt=prompt,
        mode=mode,
        frames=frames,
        seed=job.seed,
        guidance=cfg,
        temperature=job.temperature,
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


# ---- the files a model option names --------------------------------------------------------------------
def _model_files(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """The files a model option reads: a bundle JSON and its weights, a checkpoint, parts."""
    from .demo.bundle import DEMO_MODEL

    model = Path(args.model) if args.model else DEMO_MODEL
    files = [("--model", model)]
    if model.suffix in (".json", ".safetensors", ".pth"):
        files += [("--model", model.with_suffix(s)) for s in (".json", ".safetensors")]
    for flag in ("config", "text_encoder", "vae"):
        value = getattr(args, flag, None)
        if value:
            files.append((f"--{flag.replace('_', '-')}", Path(value)))
    return files


# ---- commands -------------------------------------------------------------------------------------
def _load(args: argparse.Namespace):
    from .checkpoint import safetensors_header
    from .registry import load_pipeline

    try:
        return load_pipeline(
            args.model,
            args.device,
            args.dtype,
            accept_license=args.accept_license,
            offload=args.offload,
            window=args.window,
            vae_on_cpu=args.vae_on_cpu,
            context=args.context,
            aspect_ratio=args.aspect,
            config=args.config,
            text_encoder=args.text_encoder,
            vae=args.vae,
            models_dir=args.models_dir,
        )
    except EngineError:
        raise
    except Exception:
        model = Path(args.model) if args.model else None
        if model is not None and model.suffix == ".safetensors" and model.is_file():
            safetensors_header(model)  # a damaged header is named, whichever loader tripped on it
        raise


def cmd_generate(args: argparse.Namespace) -> None:
    job = parse_job(
        {
            "prompt": args.prompt,
            "image": args.image,
            "video": args.video,
            "frames": args.frames,
            "seed": args.seed,
            "cfg": args.cfg,
            "temperature": args.temperature,
        }
    )
    out = Path(args.out)
    inputs = [(f, Path(v)) for f, v in (("--image", args.image), ("--video", args.video)) if v]
    check_output(out, inputs + _model_files(args))
    if not out.parent.is_dir():
        raise EngineError(f"folder not found: {out.parent}")
    pipeline = _load(args)
    render(pipeline, request_from(job, pipeline), out)


def _refuse(problems: list[str]) -> None:
    """Log every problem but the last, which is raised: nothing has run."""
    for problem in problems[:-1]:
        log.error("error: %s", problem)
    more = f" ({len(problems)} problems)" if len(problems) > 1 else ""
    raise EngineError(f"{problems[-1]}{more}; no job was run")


def cmd_batch(args: argparse.Namespace) -> None:
    from .limits import check_request

    batch = Path(args.jobs)
    jobs, problems = read_batch(batch)
    out_dir = Path(args.out_dir)
    inputs = [("batch file", batch)] + _model_files(args)
    outs, out_problems = batch_outputs(jobs, out_dir, inputs, batch.name)
    problems += out_problems
    if problems:
        _refuse(problems)
    if not jobs:
        raise EngineError(f"{batch} holds no jobs")
    pipeline = _load(args)
    limits = []
    for job in jobs:
        try:
            check_request(pipeline, job.frames or pipeline.info.train_frames)
        except EngineError as exc:
            limits.append(f"{batch.name}:{job.line}: {exc}")
    if limits:
        _refuse(limits)
    out_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    for n, (job, out) in enumerate(zip(jobs, outs, strict=True), 1):
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
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
    ap.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
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
            "--vae-on-cpu",
            action="store_true",
            default=None,
            help="7B: encode and decode video in CPU memory (16 GB cards)",
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


class Terminated(BaseException):  # noqa: N818 - reads as an event, like KeyboardInterrupt
    """SIGTERM or SIGHUP arrived: unwinds the run as Ctrl-C does (temporary files removed)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def ending_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Terminated in the main thread while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, _frame) -> None:
        raise Terminated(signum)

    names = [s for s in ("SIGTERM", "SIGHUP") if hasattr(signal, s)]
    old = {name: signal.signal(getattr(signal, name), stop) for name in names}
    try:
        yield
    finally:
        for name, handler in old.items():
            signal.signal(getattr(signal, name), handler)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run a command; status 0 done, 2 bad input (one line on stderr), 130 / 143 / 129 stopped
    by Ctrl-C / SIGTERM / SIGHUP, 1 an unexpected error (its traceback with --debug)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = parser().parse_args(argv)
    debug = args.debug or os.environ.get("STARFLOW_DEBUG") == "1"
    try:
        with ending_signals():
            args.func(args)
    except (EngineError, OSError) as exc:
        log.error("error: %s", _one_line(exc))
        return 2
    except MemoryError:
        log.error("error: out of memory: try fewer frames or a smaller model")
        return 2
    except (KeyboardInterrupt, Cancelled):
        log.error("cancelled")
        return 130
    except Terminated as exc:
        log.error("stopped by %s; nothing half-written was kept", exc)
        return 128 + exc.signum
    except Exception as exc:
        if debug:
            raise
        log.error(
            "error: unexpected %s: %s (run with --debug for the traceback)",
            type(exc).__name__,
            _one_line(exc),
        )
        return 1
    return 0
