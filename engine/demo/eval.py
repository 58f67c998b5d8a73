"""Evaluate a Shapes-world model with the spec's scoring rule (shared/shapes_world.md).

    python -m engine.demo.eval shapes [--model PATH] [--n 200] [--long 20] [--long-frames 480]

For N random captions (fixed seeds) it generates and scores:
  t2v    caption following;
  i2v    caption following and the PSNR of frame 0 against the given image;
  edit   success (the instruction holds, everything else stays) and preservation PSNR;
  extend a ground-truth clip continued by as many frames: the new frames follow the caption,
         and the PSNR of the first new frame against the true next frame (continuity);
  long   (480 frames = 30 s) following in the last 17-frame window and background drift
         between the first and the last second;
  chain  the t2v captions' ground-truth clips through what generation does to latents
         (encode, the training noise, the learnable denoiser, decode): the ceiling that the
         codec and denoiser leave the flow;
  speed  median seconds to the first frame and to a 17-frame clip (t2v).
Ground-truth renders of the same captions go through the same scorer: the ceiling.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TextIO

import numpy as np

from engine.api import (
    MAX_GUIDANCE,
    MAX_SEED,
    MAX_TEMPERATURE,
    EngineError,
    GenerateRequest,
    valid_guidance,
    valid_temperature,
)

from .captions import parse_instruction, random_edit
from .pipeline import V2V_NULLS, through_chain
from .scoring import (
    CaptionScore,
    EditScore,
    background_drift,
    psnr,
    score_caption,
    score_edit,
    window_scores,
)
from .world import TRAIN_FRAMES, Scene, caption, random_scene, render

log = logging.getLogger("engine.demo.eval")

TASKS = ("t2v", "i2v", "edit", "extend", "long", "chain")


@dataclass
class Case:
    """One scored clip: `ok` is the task's pass/fail, `value` its PSNR or drift (if any).

    The parts of the rule, to see where clips fail: `frames` is the share of (window) frames that
    show exactly the captioned scene, `motion` whether every object moved the captioned way,
    `kept` (edits) whether every object the edit does not name stayed in place; `by_frame`, frame
    by frame, whether it showed exactly the captioned scene (`frames` is its mean); `edit`, the
    kind of an edit (add, remove, recolour, background)."""

    ok: bool
    value: float | None = None
    first_s: float | None = None
    total_s: float | None = None
    frames: float | None = None
    motion: bool | None = None
    kept: bool | None = None
    by_frame: tuple[bool, ...] | None = None
    objects: int | None = None
    edit: str | None = None

    @classmethod
    def of(
        cls,
        score: CaptionScore,
        value: float | None = None,
        *times: float,
        objects: int | None = None,
    ) -> Case:
        return cls(
            score.follows,
            value,
            *times,
            frames=score.frame_rate,
            motion=score.motions_ok,
            by_frame=score.frames_ok,
            objects=objects,
        )


@dataclass
class TaskResult:
    task: str
    model: list[Case] = field(default_factory=list)
    truth: list[Case] = field(default_factory=list)

    @staticmethod
    def rate(cases: list[Case]) -> float:
        return float(np.mean([c.ok for c in cases])) if cases else float("nan")

    @staticmethod
    def mean_value(cases: list[Case]) -> float:
        values = [c.value for c in cases if c.value is not None]
        return float(np.mean(values)) if values else float("nan")


def run_clip(pipeline, request: GenerateRequest) -> tuple[np.ndarray, float, float]:
    """Generate one clip: (frames (T, H, W, 3) uint8, seconds to the first frame, total seconds)."""
    t0 = time.perf_counter()
    first, parts = None, []
    for event in pipeline.generate(request):
        if first is None:
            first = time.perf_counter() - t0
        parts.append(event.frames)
    return np.concatenate(parts), first or 0.0, time.perf_counter() - t0


def _scenes(seed: int, n: int) -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [random_scene(rng) for _ in range(n)]


class Progress:
    """Reports a task's progress to a stream about every tenth of it: clips done, the pass rate
    so far and an estimate of the minutes left (from the pace since the first clip)."""

    def __init__(self, stream: TextIO, parts: int = 10) -> None:
        self.stream, self.parts = stream, parts
        self.first: dict[str, float] = {}

    def __call__(self, result: TaskResult, n: int) -> None:
        done, now = len(result.model), time.perf_counter()
        first = self.first.setdefault(result.task, now)
        if done % max(1, n // self.parts) and done != n:
            return
        line = f"{result.task} {done}/{n}: {100 * result.rate(result.model):.1f}% pass so far"
        if done > 1:
            line += f", ~{(now - first) / (done - 1) * (n - done) / 60:.1f} min left"
        self.stream.write(line + "\n")
        self.stream.flush()


def _edit_case(score: EditScore, kind: str, objects: int) -> Case:
    case = Case.of(score.result, score.preservation_psnr, objects=objects)
    return dataclasses.replace(case, ok=score.succeeds, kept=all(score.kept), edit=kind)


def _follows(made: np.ndarray, text: str, objects: int, first: np.ndarray | None = None) -> Case:
    """A clip scored against its caption; with `first`, frame 0's PSNR against it."""
    value = None if first is None else psnr(made[0], first)
    return Case.of(score_caption(made, text), value, objects=objects)


def _last_window(made: np.ndarray, text: str, objects: int) -> Case:
    return Case.of(window_scores(made, text)[-1], background_drift(made), objects=objects)


def _edited(made: np.ndarray, source: np.ndarray, instruction: str, scene: Scene) -> Case:
    score = score_edit(source, made, instruction, scene)
    return _edit_case(score, parse_instruction(instruction).kind, len(scene.objects))


@dataclass(frozen=True)
class Trial:
    """One case of a task: its ground truth's case, what the model makes (a request's clip, or
    `make`'s frames where there is no request) and how the made frames are scored."""

    label: str
    truth: Case
    score: Callable[[np.ndarray], Case]
    request: GenerateRequest | None = None
    make: Callable[[], np.ndarray] | None = None


def run_task(
    pipeline,
    task: str,
    trials: Iterable[Trial],
    n: int,
    truth_only: bool = False,
    progress: Progress | None = None,
) -> TaskResult:
    """Score each trial's ground truth and (unless truth_only) what the model makes of it."""
    out = TaskResult(task)
    for i, trial in enumerate(trials):
        out.truth.append(trial.truth)
        if truth_only:
            continue
        if trial.request is None:
            case = trial.score(trial.make())
        else:
            made, first, total = run_clip(pipeline, trial.request)
            case = dataclasses.replace(trial.score(made), first_s=first, total_s=total)
        out.model.append(case)
        log.info("%s %d/%d %s: %s", task, i + 1, n, case.ok, trial.label)
        if progress is not None:
            progress(out, n)
    return out


def t2v_trials(scenes: list[Scene], guidance: float) -> Iterator[Trial]:
    for i, scene in enumerate(scenes):
        text, k = caption(scene), len(scene.objects)
        yield Trial(
            text,
            _follows(render(scene, TRAIN_FRAMES), text, k),
            partial(_follows, text=text, objects=k),
            GenerateRequest(text, frames=TRAIN_FRAMES, seed=i, guidance=guidance),
        )


def given_trials(scenes: list[Scene], mode: str, guidance: float) -> Iterator[Trial]:
    """Generation from given frames of each scene's clip, scored against the frames it should
    make (the ceiling: those frames themselves) and the first made frame's PSNR against theirs.
    mode 'i2v': frame 0 given, TRAIN_FRAMES made from it (frame 0 the given image itself);
    'extend': the first TRAIN_FRAMES given, as many more made (continuity with the true next)."""
    for i, scene in enumerate(scenes):
        text, k = caption(scene), len(scene.objects)
        if mode == "i2v":
            target = render(scene, TRAIN_FRAMES)
            given = {"image": target[0]}
        else:
            clip = render(scene, 2 * TRAIN_FRAMES)
            target, given = clip[TRAIN_FRAMES:], {"video": clip[:TRAIN_FRAMES]}
        yield Trial(
            text,
            Case.of(score_caption(target, text), 100.0, objects=k),
            partial(_follows, text=text, objects=k, first=target[0]),
            GenerateRequest(
                text, mode=mode, frames=TRAIN_FRAMES, seed=i, guidance=guidance, **given
            ),
        )


def edit_trials(scenes: list[Scene], guidance: float, seed: int) -> Iterator[Trial]:
    rng = np.random.default_rng(seed + 1)
    for i, scene in enumerate(scenes):
        instruction, target = random_edit(scene, rng)
        source = render(scene, TRAIN_FRAMES)
        yield Trial(
            instruction,
            _edited(render(target, TRAIN_FRAMES), source, instruction, scene),
            partial(_edited, source=source, instruction=instruction, scene=scene),
            GenerateRequest(instruction, mode="v2v", seed=i, guidance=guidance, video=source),
        )


def long_trials(scenes: list[Scene], frames: int, guidance: float) -> Iterator[Trial]:
    for i, scene in enumerate(scenes):
        text, k = caption(scene), len(scene.objects)
        yield Trial(
            text,
            _last_window(render(scene, frames), text, k),
            partial(_last_window, text=text, objects=k),
            GenerateRequest(text, frames=frames, seed=i, guidance=guidance),
        )


def chain_trials(pipeline, scenes: list[Scene]) -> Iterator[Trial]:
    for i, scene in enumerate(scenes):
        text, clip, k = caption(scene), render(scene, TRAIN_FRAMES), len(scene.objects)
        yield Trial(
            text,
            _follows(clip, text, k),
            partial(_follows, text=text, objects=k),
            make=partial(through_chain, pipeline, clip, text, i),
        )


def evaluate(
    pipeline,
    n: int = 200,
    n_long: int = 20,
    long_frames: int = 480,
    guidance: float = 2.5,
    seed: int = 0,
    tasks: tuple[str, ...] = TASKS,
    truth_only: bool = False,
    progress: Progress | None = None,
) -> dict[str, TaskResult]:
    """Score `pipeline` (anything with .generate(GenerateRequest) -> FrameEvents) on each task."""
    scenes = _scenes(seed, max(n, n_long))
    short, long = scenes[:n], scenes[:n_long]
    trials = {
        "t2v": lambda: t2v_trials(short, guidance),
        "i2v": lambda: given_trials(short, "i2v", guidance),
        "edit": lambda: edit_trials(short, guidance, seed),
        "extend": lambda: given_trials(short, "extend", guidance),
        "long": lambda: long_trials(long, long_frames, guidance),
        "chain": lambda: chain_trials(pipeline, short),
    }
    results = {}
    for task in TASKS:
        if task in tasks:
            count = len(long if task == "long" else short)
            results[task] = run_task(pipeline, task, trials[task](), count, truth_only, progress)
    return results


ROWS = {
    "t2v": ("text to video", "follows caption", None),
    "i2v": ("image to video", "follows caption", "frame-0 PSNR {:.1f} dB"),
    "edit": ("video edit", "edit succeeds", "preservation {:.1f} dB"),
    "extend": ("extend a clip", "new frames follow", "continuity {:.1f} dB"),
    "long": ("long clip", "last window follows", "background drift {:.1f}"),
    "chain": ("ground truth through the chain", "follows caption", None),
}


def _cell(cases: list[Case], value_fmt: str | None) -> str:
    if not cases:
        return "-"
    text = f"{100 * TaskResult.rate(cases):5.1f}%"
    if value_fmt is not None:
        text += "  " + value_fmt.format(TaskResult.mean_value(cases))
    return text


def _part(cases: list[Case], name: str) -> str:
    values = [float(getattr(c, name)) for c in cases if getattr(c, name) is not None]
    return f"{100 * np.mean(values):5.1f}%" if values else "-"


def breakdown(results: dict[str, TaskResult]) -> str:
    """A Markdown table of the rule's parts, model / ground truth: the mean share of frames that
    show exactly the captioned scene (the last window for long clips, the edited caption for
    edits), the share of clips where every object moves as captioned, and for edits the share
    where every object the instruction does not name stays in place."""
    lines = [
        "| task | frames showing the caption | every motion right | unnamed objects kept |",
        "|---|---|---|---|",
    ]
    for task, r in results.items():
        cells = [f"{_part(r.model, k)} / {_part(r.truth, k)}" for k in ("frames", "motion")]
        cells.append(
            f"{_part(r.model, 'kept')} / {_part(r.truth, 'kept')}" if task == "edit" else "-"
        )
        lines.append(f"| {ROWS[task][0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def by_objects(results: dict[str, TaskResult]) -> str:
    """A Markdown table of each task's pass rate (model / ground truth, and the number of clips)
    over the scenes with one object and those with two: whether a model fails at composing."""
    lines = ["| task | one object | two objects |", "|---|---|---|"]
    for task, r in results.items():
        cells = []
        for k in (1, 2):
            model = [c for c in r.model if c.objects == k]
            truth = [c for c in r.truth if c.objects == k]
            n = len(model) or len(truth)
            cells.append(f"{_cell(model, None)} / {_cell(truth, None)} (n={n})")
        lines.append(f"| {ROWS[task][0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


EDIT_KINDS = ("add", "remove", "recolour", "background")


def by_edit(result: TaskResult) -> str:
    """A Markdown table of the edits by kind: success, frames showing the edited caption, every
    motion right and unnamed objects kept, each model / ground truth, and the number of edits.
    What an edit model fails at: placing a new object, taking the named one away, a colour."""
    lines = [
        "| edit | n | succeeds | frames showing the edit | every motion right | unnamed objects kept |",
        "|---|---|---|---|---|---|",
    ]
    for kind in EDIT_KINDS:
        model = [c for c in result.model if c.edit == kind]
        truth = [c for c in result.truth if c.edit == kind]
        cells = [f"{_cell(model, None)} / {_cell(truth, None)}"]
        cells += [f"{_part(model, k)} / {_part(truth, k)}" for k in ("frames", "motion", "kept")]
        lines.append(f"| {kind} | {len(model) or len(truth)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def by_frame(results: dict[str, TaskResult]) -> str:
    """A Markdown table of the model's clips frame by frame: the share of clips whose frame t (of
    the last window for long clips, of the edited clip for edits) shows exactly the captioned
    scene. It shows where a causal generator loses the scene: at once, or as frames go on."""
    rows = {}
    for task, r in results.items():
        seqs = [c.by_frame for c in r.model if c.by_frame]
        if seqs and len({len(q) for q in seqs}) == 1:
            rows[task] = np.mean(seqs, axis=0)
    if not rows:
        return ""
    width = max(len(v) for v in rows.values())
    lines = [
        "| task | " + " | ".join(str(t) for t in range(width)) + " |",
        "|---|" + "---|" * width,
    ]
    for task, shares in rows.items():
        cells = [f"{100 * v:.0f}" for v in shares] + ["-"] * (width - len(shares))
        lines.append(f"| {ROWS[task][0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(results: dict[str, TaskResult], long_frames: int) -> str:
    """A Markdown table: one row per task, the model's score beside the ground-truth ceiling."""
    lines = ["| task | n | measure | model | ground truth |", "|---|---|---|---|---|"]
    for task, r in results.items():
        name, measure, value_fmt = ROWS[task]
        if task == "long":
            name = f"{name} ({long_frames} frames)"
        n = len(r.model) or len(r.truth)
        lines.append(
            f"| {name} | {n} | {measure} | {_cell(r.model, value_fmt)} | {_cell(r.truth, value_fmt)} |"
        )
    t2v = results.get("t2v")
    if t2v is not None and t2v.model:
        first = np.median([c.first_s for c in t2v.model])
        total = np.median([c.total_s for c in t2v.model])
        lines.append(
            f"\nspeed (t2v, median): first frame {first:.2f} s, {TRAIN_FRAMES}-frame clip {total:.2f} s"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m engine.demo.eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("domain", choices=("shapes",), help="the evaluation domain")
    ap.add_argument("--model", help="bundle JSON (default: the built-in demo model)")
    ap.add_argument("--n", type=int, default=200, help="captions per task")
    ap.add_argument("--long", type=int, default=20, help="captions for the long-clip task")
    ap.add_argument("--long-frames", type=int, default=480, help="frames of a long clip")
    ap.add_argument("--tasks", default=",".join(TASKS), help=f"comma list of {', '.join(TASKS)}")
    ap.add_argument("--guidance", type=float, default=2.5)
    ap.add_argument(
        "--temperature", type=float, help="sampling noise scale (default: the model's own)"
    )
    ap.add_argument(
        "--v2v-null",
        choices=V2V_NULLS,
        help="guided edits' unconditional text: '' or '(v2v) ' (default: the model's own)",
    )
    ap.add_argument(
        "--v2v-carry",
        type=int,
        help="edited frames an edit segment takes from the one before (default: the model's own)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--truth-only", action="store_true", help="score only ground-truth renders")
    ap.add_argument("--json", type=Path, help="also write every case here")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every clip")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    return ap.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """EngineError naming the option where a number is out of range or --json cannot be
    written (checked before anything is evaluated)."""
    from engine.media import temp_beside

    for flag, value, low in (
        ("--n", args.n, 1),
        ("--long", args.long, 0),
        ("--long-frames", args.long_frames, TRAIN_FRAMES),
        ("--threads", args.threads, 0),
        ("--seed", args.seed, 0),
    ):
        if value < low:
            raise EngineError(f"{flag} must be at least {low}, got {value}")
    if args.seed > MAX_SEED:
        raise EngineError(f"--seed must be at most {MAX_SEED}, got {args.seed}")
    if not valid_guidance(args.guidance):
        raise EngineError(f"--guidance must be from 0 to {MAX_GUIDANCE:g}, got {args.guidance}")
    if args.temperature is not None and not valid_temperature(args.temperature):
        raise EngineError(
            f"--temperature must be a positive number up to {MAX_TEMPERATURE:g}, "
            f"got {args.temperature}"
        )
    if args.json is not None:
        if not args.json.parent.is_dir():
            raise EngineError(f"--json: folder not found: {args.json.parent}")
        try:
            temp_beside(args.json).unlink()
        except OSError as exc:
            raise EngineError(
                f"--json: cannot write in {args.json.parent}: {exc.strerror}"
            ) from exc


def write_json(path: Path, results: dict[str, TaskResult]) -> None:
    """Every case, atomically (an EngineError leaves any earlier file as it was)."""
    from engine.media import atomic_write

    text = json.dumps({k: asdict(v) for k, v in results.items()}, indent=1) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(message)s"
    )
    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    unknown = set(tasks) - set(TASKS)
    if unknown:
        sys.stderr.write(f"unknown task(s): {', '.join(sorted(unknown))}\n")
        return 2
    try:
        check_args(args)
    except EngineError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    import torch

    from engine.registry import load_pipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        pipeline = None if args.truth_only else load_pipeline(args.model, args.device)
    except EngineError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    overrides = {
        "temperature": args.temperature,
        "v2v_null": args.v2v_null,
        "v2v_carry": args.v2v_carry,
    }
    for key, value in overrides.items():
        if pipeline is None or value is None:
            continue
        try:
            pipeline.settings = dataclasses.replace(pipeline.settings, **{key: value})
        except ValueError as exc:
            sys.stderr.write(f"--{key.replace('_', '-')}: {exc}\n")
            return 2
    try:
        results = evaluate(
            pipeline,
            args.n,
            args.long,
            args.long_frames,
            args.guidance,
            args.seed,
            tasks,
            args.truth_only,
            None if args.quiet else Progress(sys.stderr),
        )
    except EngineError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    name = "ground truth only" if pipeline is None else pipeline.info.name
    sys.stdout.write(f"Shapes world evaluation: {name}\n\n{table(results, args.long_frames)}\n")
    sys.stdout.write(f"\nWhere clips fail (model / ground truth):\n\n{breakdown(results)}\n")
    sys.stdout.write(
        f"\nPass rate by objects in the scene (model / ground truth):\n\n{by_objects(results)}\n"
    )
    if "edit" in results:
        sys.stdout.write(f"\nEdits by kind (model / ground truth):\n\n{by_edit(results['edit'])}\n")
    frames = by_frame(results)
    if frames:
        sys.stdout.write(
            f"\nFrames showing the caption, % of clips, by frame (model):\n\n{frames}\n"
        )
    if args.json is not None:
        try:
            write_json(args.json, results)
        except EngineError as exc:
            sys.stderr.write(f"error: --json: {exc}\n")
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
