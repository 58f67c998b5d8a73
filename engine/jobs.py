"""A batch's or the command line's jobs, checked before anything runs: every field's type and
range, the input files, and each output against the inputs and the other outputs.

    jobs, problems = read_batch(Path("jobs.jsonl"))   # Job per line, a message per bad line
    outs, problems = batch_outputs(jobs, Path("renders"), [("batch file", Path("jobs.jsonl"))])
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .api import (
    MAX_GUIDANCE,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MAX_TEMPERATURE,
    EngineError,
    valid_guidance,
    valid_temperature,
)
from .limits import MAX_FRAMES

JOB_FIELDS = {"prompt", "image", "video", "frames", "seed", "cfg", "temperature", "out"}
EXACT_FLOAT = 2**53  # from here floats skip integers: a float seed there is refused


def _number(job: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    """job[key] as a finite int (exact: JSON integers and digit strings as written) or float
    (`default` where absent or null); EngineError naming the field otherwise."""
    value = job.get(key)
    if value is None:
        return default
    wanted = "an integer" if kind is int else "a number"
    number: int | float | None = None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        number = None
    elif kind is float:
        with contextlib.suppress(ValueError, OverflowError):
            number = float(value)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = int(value.strip())
    elif value.is_integer():
        if abs(value) >= EXACT_FLOAT:
            raise EngineError(
                f"{key} {value!r} is a float at or above 2^53, where floats skip integers: "
                "write it as an integer or a string of digits"
            )
        number = int(value)
    if number is None or (kind is float and not math.isfinite(number)):
        raise EngineError(f"{key} must be {wanted}, got {value!r}")
    return number


@dataclass(frozen=True)
class Job:
    """A job's fields, each of its type and in range (checked before any job runs)."""

    prompt: str
    image: str | None = None
    video: str | None = None
    frames: int = 0
    seed: int = 0
    cfg: float | None = None
    temperature: float | None = None
    out: str | None = None
    line: int = 0  # its line in a batch file (0: the command line's flags)


def _path_field(job: dict[str, Any], key: str) -> str | None:
    value = job.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise EngineError(f"{key} must be a file name, got {value!r}")
    return value


def parse_job(job: dict[str, Any], line: int = 0) -> Job:
    """A job (CLI flags or one JSONL line) checked field by field: types, ranges, the prompt's
    length, input files present. EngineError naming the first bad field."""
    unknown = set(job) - JOB_FIELDS
    if unknown:
        raise EngineError(f"unknown job field(s): {', '.join(sorted(unknown))}")
    prompt = job.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise EngineError(f"prompt must be text, got {prompt!r}")
    prompt = (prompt or "").strip()
    if not prompt:
        raise EngineError("a prompt is required")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise EngineError(
            f"prompt too long: {len(prompt):,} characters (at most {MAX_PROMPT_CHARS:,})"
        )
    frames, seed = _number(job, "frames", int, 0), _number(job, "seed", int, 0)
    cfg, temperature = _number(job, "cfg", float, None), _number(job, "temperature", float, None)
    if not 0 <= frames <= MAX_FRAMES:
        raise EngineError(
            f"frames must be positive (0: the model's clip length) and at most {MAX_FRAMES}, "
            f"got {frames}"
        )
    if not 0 <= seed <= MAX_SEED:
        raise EngineError(f"seed must be an integer from 0 to {MAX_SEED}, got {seed}")
    if cfg is not None and not valid_guidance(cfg):
        raise EngineError(f"cfg must be from 0 to {MAX_GUIDANCE:g}, got {cfg}")
    if temperature is not None and not valid_temperature(temperature):
        raise EngineError(
            f"temperature must be a positive number up to {MAX_TEMPERATURE:g}, got {temperature}"
        )
    image, video = _path_field(job, "image"), _path_field(job, "video")
    for key, name in (("image", image), ("video", video)):
        if name is not None and not Path(name).is_file():
            raise EngineError(f"{key} not found: {name}")
    out = job.get("out")
    if out is not None and (not isinstance(out, str) or not out.strip()):
        raise EngineError(f"out must be a file name, got {out!r}")
    return Job(prompt, image, video, frames, seed, cfg, temperature, out, line)


def check_output(out: Path, inputs: list[tuple[str, Path]], what: str = "--out") -> None:
    """Refuse an output that is one of the inputs (by path, or by inode: a hard link)."""
    from .media import same_file

    for flag, path in inputs:
        if same_file(out, path):
            raise EngineError(f"{what} {out} is the {flag} input: it would be overwritten")


def batch_outputs(
    jobs: list[Job], out_dir: Path, inputs: list[tuple[str, Path]], source: str = "job"
) -> tuple[list[Path], list[str]]:
    """Each job's output inside `out_dir`, and the problems (`source`:line: ...): a path outside
    it (absolute, or through ..), one of the inputs, or an output two jobs share."""
    root, outs, problems, seen = out_dir.resolve(), [], [], {}
    for n, job in enumerate(jobs, 1):
        name = job.out or f"job_{n:04d}.mp4"
        out = out_dir / name
        outs.append(out)
        try:
            inside = out.resolve()
            if Path(name).is_absolute() or inside == root or not inside.is_relative_to(root):
                raise EngineError(f"out {name!r} is not a file inside --out-dir {out_dir}")
            own = [(k, Path(v)) for k, v in (("image", job.image), ("video", job.video)) if v]
            check_output(out, inputs + own, "out")
            if inside in seen:
                raise EngineError(f"out {name!r} is also line {seen[inside]}'s output")
            seen[inside] = job.line
        except EngineError as exc:
            problems.append(f"{source}:{job.line}: {exc}")
    return outs, problems


def read_batch(path: Path) -> tuple[list[Job], list[str]]:
    """A JSONL batch file's jobs, and its problems (line by line, each naming the line)."""
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError as exc:
        raise EngineError(f"{path} is not a text file of JSON lines") from exc
    jobs, problems = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            job = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path.name}:{n}: not valid JSON ({exc.msg})")
            continue
        if not isinstance(job, dict):
            problems.append(f"{path.name}:{n}: each line must be a JSON object")
            continue
        try:
            jobs.append(parse_job(job, n))
        except EngineError as exc:
            problems.append(f"{path.name}:{n}: {exc}")
    return jobs, problems
