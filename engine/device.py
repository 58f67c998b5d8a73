"""Where and in what precision a model runs: device and dtype choice, CPU precision warnings."""

from __future__ import annotations

import logging
import time

import torch

from .api import EngineError

log = logging.getLogger(__name__)


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        built = "built without CUDA" if torch.version.cuda is None else "sees no GPU"
        raise EngineError(
            f"--device {device}: this torch ({torch.__version__}) {built}; use --device cpu"
        )
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return {
            "fp32": torch.float32,
            "float32": torch.float32,
            "bf16": torch.bfloat16,
            "bfloat16": torch.bfloat16,
            "fp16": torch.float16,
        }[dtype]
    except KeyError:
        raise EngineError(f"unknown precision {dtype!r} (use auto, fp32 or bf16)") from None


SLOW_PRECISION = 2.0  # a CPU precision this many times slower than float32 gets a warning
_DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def precision_slowdown(
    device: torch.device, dtype: torch.dtype, side: int = 256, reps: int = 3
) -> float:
    """How many times longer a side x side matrix product takes in `dtype` than in float32 on
    `device` (best of `reps` after one warm-up each). CPUs without native bfloat16 (no AVX-512
    BF16 or AMX) emulate it, many times slower."""
    a = torch.randn(side, side, device=device)
    b = torch.randn(side, side, device=device)

    def best(dt: torch.dtype) -> float:
        x, y = a.to(dt), b.to(dt)
        times = []
        for _ in range(reps + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            (x @ y).float().sum().item()
            times.append(time.perf_counter() - t0)
        return min(times[1:])

    return best(dtype) / max(best(torch.float32), 1e-9)


def precision_warnings(
    device: torch.device, dtype: torch.dtype, limit: float | None = None
) -> tuple[str, ...]:
    """A warning when a reduced precision on a CPU is over `limit` (default SLOW_PRECISION) times
    slower than float32 (the CPU emulates it), naming the fast choice; nothing on GPUs or in
    float32."""
    if device.type != "cpu" or dtype == torch.float32:
        return ()
    factor = precision_slowdown(device, dtype)
    if factor <= (SLOW_PRECISION if limit is None else limit):
        return ()
    name = _DTYPE_NAMES.get(dtype, str(dtype).replace("torch.", ""))
    text = (
        f"{name} matrix products take {factor:.0f}x as long as fp32 ones on this CPU (it has no "
        f"native {name}): precision auto or fp32 is the fast choice here"
    )
    log.warning("%s", text)
    return (text,)
