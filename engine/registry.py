"""Which loader a model source goes to: each model family says which sources are its own.

pipeline = load_pipeline()                          # the built-in Shapes-world demo model
pipeline = load_pipeline("runs/demo/shapes_demo.json")
pipeline = load_pipeline("apple/starflow", accept_license=True, offload=True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .pipeline import Pipeline


@dataclass(frozen=True)
class Family:
    name: str
    owns: Callable[[str | Path], bool]  # is this source (path or repo id) one of the family's?
    load: Callable[..., Pipeline]  # (source, device, dtype, accept_license, **options)


def _load_demo(source, device, dtype, accept_license, **_options) -> Pipeline:
    from .demo.bundle import load_bundle

    return load_bundle(Path(source).with_suffix(".json"), device, dtype)


def _owns_starflow_v(source) -> bool:
    from .starflow_v.loader import is_checkpoint

    return is_checkpoint(source)


def _load_starflow_v(source, device, dtype, accept_license, **options) -> Pipeline:
    from .starflow_v.loader import LargeOptions, load_large_pipeline

    chosen = LargeOptions(**{k: v for k, v in options.items() if v is not None})
    return load_large_pipeline(source, device, dtype, chosen, accept_license)


# the first family that owns a source loads it; the demo bundle takes whatever is left
FAMILIES = (
    Family("starflow-v", _owns_starflow_v, _load_starflow_v),
    Family("shapes-demo", lambda source: True, _load_demo),
)


def family_of(source: str | Path) -> Family:
    return next(f for f in FAMILIES if f.owns(source))


def load_pipeline(
    model: str | Path | None = None,
    device: str = "auto",
    dtype: str = "auto",
    accept_license: bool = False,
    **options,
) -> Pipeline:
    """Load a model: None = the built-in demo model; a demo bundle JSON; or the released
    STARFlow-V as a .pth/.safetensors checkpoint or a Hub repo id (options: LargeOptions' fields)."""
    if model is None:
        from .demo.bundle import DEMO_MODEL

        model = DEMO_MODEL
    return family_of(model).load(model, device, dtype, accept_license, **options)
