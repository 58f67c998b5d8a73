"""Writing demo bundles (engine.demo.bundle reads them) and a run folder's codec files: the
bundle JSON, a checkpoint's weights, the shipped export, averages and copies of bundles, and a
bundle's codec replaced by a fine-tuned one. Files are written as `.part` and renamed into place.

A run folder holds shapes_demo.safetensors (`flow.`, `codec.`, `text.` tensors), shapes_demo.json,
codec.safetensors + codec.json (the codec, for decoder fine-tunes) and train_state.pt (optimisers,
step)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from engine.config import FlowConfig

from .bundle import sampling_settings, split_state
from .codec import CodecConfig, DemoCodec
from .data import EDIT_FRAMES
from .text import TextConfig
from .world import FPS, HEIGHT, TRAIN_FRAMES, WIDTH

log = logging.getLogger(__name__)

BUNDLE = "shapes_demo"
CODEC = "codec"
STATE = "train_state.pt"
BUNDLE_FILES = (f"{BUNDLE}.safetensors", f"{BUNDLE}.json")


def bundle_meta(flow: FlowConfig, codec: CodecConfig, text: TextConfig, noise_std: float) -> dict:
    """The bundle JSON (engine.demo.bundle.load_bundle reads it), without the training record;
    noise_std: the latent noise the flow is trained with."""
    return {
        "name": "Shapes world demo",
        "flow": flow.to_dict(),
        "codec": codec.to_dict(),
        "text": text.to_dict(),
        "noise_std": noise_std,
        "fps": FPS,
        "width": WIDTH,
        "height": HEIGHT,
        "train_frames": TRAIN_FRAMES,
        "sampling": {
            "context_noise": noise_std,
            "v2v_segment": EDIT_FRAMES,
            "extend_context": TRAIN_FRAMES - 1,
            "jacobi_block_size": 12,
            "jacobi_max_iter": 12,
            "jacobi_threshold": 1e-3,
        },
    }


def write_bundle_parts(out: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write a bundle's weights and JSON as `.part` files; commit_parts makes them current."""
    save_file(tensors, str(out / f"{BUNDLE}.safetensors.part"))
    (out / f"{BUNDLE}.json.part").write_text(json.dumps(meta, indent=1))


def commit_parts(out: Path, names: tuple[str, ...]) -> None:
    """Rename each OUT/name.part over OUT/name (each file replaced atomically)."""
    for name in names:
        (out / f"{name}.part").replace(out / name)


# ---- the run folder's codec ------------------------------------------------------------------------
def save_codec(codec: DemoCodec, out: Path) -> None:
    """Write `codec` as OUT/codec.safetensors and OUT/codec.json."""
    out.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in codec.state_dict().items()},
        str(out / f"{CODEC}.safetensors"),
    )
    (out / f"{CODEC}.json").write_text(json.dumps(codec.cfg.to_dict(), indent=1))


def build_codec(cfg: dict, state: dict[str, torch.Tensor], device: torch.device) -> DemoCodec:
    """The frozen codec of configuration `cfg` with tensors `state`, on `device`."""
    codec = DemoCodec.from_config(cfg)
    codec.load_state_dict(state)
    return codec.to(device).eval().requires_grad_(False)


def load_codec(path: Path, device: torch.device) -> DemoCodec:
    """A codec saved by save_codec (path: its .safetensors) or inside a bundle."""
    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    state = load_file(str(path))
    if "codec" in meta:
        return build_codec(meta["codec"], split_state(state, "codec."), device)
    return build_codec(meta, state, device)


# ---- bundles made from bundles ---------------------------------------------------------------------
def init_source(path: Path, option: str = "--init") -> tuple[dict, dict[str, torch.Tensor]]:
    """The JSON and tensors of the bundle given to `option` (--init: the bundle a run starts from),
    checked to be a demo bundle with a learned codec and a flow; a missing or truncated file is a
    ValueError naming the option and the file."""
    try:
        meta = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{option} {path}: cannot read the bundle: {exc}") from exc
    if not isinstance(meta, dict) or not {"flow", "codec", "text"} <= set(meta):
        raise ValueError(f"{option} {path}: not a demo bundle (no flow, codec and text)")
    if not isinstance(meta["codec"], dict) or meta["codec"].get("kind") != "autoencoder":
        raise ValueError(f"{option} {path}: the bundle has no learned codec to train on")
    try:
        state = load_file(str(Path(path).with_suffix(".safetensors")))
    except Exception as exc:  # missing, truncated or damaged (safetensors' own error type)
        raise ValueError(f"{option} {path}: cannot read the bundle's weights: {exc}") from exc
    return meta, state


def check_out_free(out: Path, hint: str) -> None:
    """A ValueError (ending with `hint`) when OUT already holds a run or a bundle, which a new
    bundle written there would replace."""
    if (out / STATE).exists() or (out / f"{BUNDLE}.json").exists():
        raise ValueError(f"{out} already holds a run or a bundle: {hint}")


def init_codec(
    path: Path, meta: dict, state: dict[str, torch.Tensor], out: Path, device: torch.device
) -> DemoCodec:
    """The codec of the --init bundle at `path` (its meta and tensors), also saved as OUT's
    codec, for later decoder fine-tunes; tensors that do not fit are a ValueError naming it."""
    try:
        codec = build_codec(meta["codec"], split_state(state, "codec."), device)
    except (RuntimeError, TypeError, KeyError) as exc:
        raise ValueError(f"--init {path}: its codec does not load: {exc}") from exc
    save_codec(codec, out)
    return codec


def float32(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` with its floating-point tensors in float32."""
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def copy_bundle(path: Path, out: Path, device: torch.device) -> DemoCodec:
    """OUT as a copy of the bundle at `path` (weights in float32, its training record kept) with
    the bundle's codec saved beside it: a run whose decoder can be fine-tuned. OUT must not hold
    a run or a bundle already."""
    check_out_free(out, "fine-tune it without --init")
    meta, state = init_source(path)
    meta.pop("weights_dtype", None)
    codec = init_codec(path, meta, state, out, device)
    write_bundle_parts(out, float32(state), meta)
    commit_parts(out, BUNDLE_FILES)
    log.info("copied %s to %s", path, out)
    return codec


def average_bundles(paths: list[Path], out: Path) -> None:
    """OUT's bundle as the element-wise mean of the bundles at `paths` (weights averaged in
    float32): runs of one lineage averaged, as stochastic weight averaging does across a schedule's
    cycles. The bundles must hold the same model (every setting but the training record, and the
    same tensor names and shapes); the JSON is the last one's, its training record listing each
    bundle's. OUT must not hold a run or a bundle already."""
    if len(paths) < 2:
        raise ValueError("average needs two bundles or more")
    check_out_free(out, "average into another folder")
    meta, total, records = sum_bundles(paths)
    state = {k: v / len(paths) if v.is_floating_point() else v for k, v in total.items()}
    meta["training"] = {
        "step": records[-1].get("step"),
        "average": [{"from": str(p), "record": r} for p, r in zip(paths, records, strict=True)],
    }
    out.mkdir(parents=True, exist_ok=True)
    write_bundle_parts(out, state, meta)
    commit_parts(out, BUNDLE_FILES)
    log.info("averaged %d bundles into %s", len(paths), out)


def sum_bundles(paths: list[Path]) -> tuple[dict, dict[str, torch.Tensor], list[dict]]:
    """The last bundle's JSON (without training record and weights dtype), the float32 sum of
    the bundles' floating-point tensors (the others, equal in all, as they are) and each bundle's
    training record; a bundle of another model than the first's is a ValueError naming it."""
    first, total = init_source(paths[0], "average")
    records = [first.pop("training", {})]
    first.pop("weights_dtype", None)
    total, meta = float32(total), first
    for path in paths[1:]:
        meta, state = init_source(path, "average")
        records.append(meta.pop("training", {}))
        meta.pop("weights_dtype", None)
        if meta != first:
            differ = sorted(k for k in meta.keys() | first.keys() if meta.get(k) != first.get(k))
            raise ValueError(
                f"average {path}: not the same model as {paths[0]} ({', '.join(differ)})"
            )
        add_bundle(total, state, f"average {path}", paths[0])
    return meta, total, records


def add_bundle(
    total: dict[str, torch.Tensor], state: dict[str, torch.Tensor], name: str, first: Path
) -> None:
    """Add `state`'s floating-point tensors to `total` in place; its others must equal total's.
    A bundle of other tensors is a ValueError starting with `name`."""
    if {k: v.shape for k, v in state.items()} != {k: v.shape for k, v in total.items()}:
        raise ValueError(f"{name}: its tensors differ from {first}'s")
    for k, v in state.items():
        if v.is_floating_point():
            total[k] += v.float()
        elif not torch.equal(v, total[k]):
            raise ValueError(f"{name}: its {k} differs from {first}'s")


# ---- a bundle's codec, and its export --------------------------------------------------------------
def check_bundle_codec(run: Path, codec: DemoCodec) -> dict:
    """OUT's bundle JSON, after checking that its flow was trained on `codec`'s latents."""
    meta = json.loads((run / f"{BUNDLE}.json").read_text())
    if meta.get("codec", {}).get("kind") != "autoencoder":
        raise ValueError(f"{run}: the bundle has no learned codec to replace")
    stats = tuple(tuple(meta["codec"].get(k, ())) for k in ("latent_mean", "latent_std"))
    if stats != (codec.cfg.latent_mean, codec.cfg.latent_std):
        raise ValueError(f"{run}: the codec's latents differ from those the flow was trained on")
    return meta


def replace_bundle_codec(run: Path, codec: DemoCodec, finetune: dict) -> None:
    """Put `codec` (a decoder fine-tuned with the encoder frozen) into OUT's bundle: the flow was
    trained on the same latents, so it stays valid. Written atomically, like a checkpoint.
    `finetune` (how the decoder was fine-tuned) joins the training record's list of fine-tunes."""
    meta = check_bundle_codec(run, codec)
    state = load_file(str(run / f"{BUNDLE}.safetensors"))
    state = {k: v for k, v in state.items() if not k.startswith("codec.")}
    state.update({f"codec.{k}": v.cpu().contiguous() for k, v in codec.state_dict().items()})
    meta["codec"] = codec.cfg.to_dict()
    record = meta.setdefault("training", {})
    earlier = record.get("decoder_finetune", [])
    record["decoder_finetune"] = [*([earlier] if isinstance(earlier, dict) else earlier), finetune]
    write_bundle_parts(run, state, meta)
    commit_parts(run, BUNDLE_FILES)
    log.info("replaced the codec of %s's bundle (sharpen %d)", run, codec.cfg.sharpen)


def export_bundle(
    run: Path,
    dest: Path,
    dtype: torch.dtype = torch.float16,
    temperature: float | None = None,
    v2v_null: str | None = None,
    v2v_carry: int | None = None,
) -> None:
    """Copy OUT's bundle to `dest` (e.g. resources/models) with weights stored as `dtype`
    (loaders cast to the model's dtype), halving the shipped size. `temperature`: the bundle's
    default sampling temperature (what `python -m engine.demo.eval shapes --temperature` found
    best); None keeps the run's (1 unless set). `v2v_null`: guided edits' unconditional text
    ("empty" or "task", engine.demo.pipeline.DemoSettings) and `v2v_carry` (edited frames an edit
    segment takes from the one before); None keeps the run's."""
    meta = json.loads((run / f"{BUNDLE}.json").read_text())
    meta["weights_dtype"] = str(dtype).removeprefix("torch.")
    if temperature is not None:
        meta["sampling"]["temperature"] = temperature
    if v2v_null is not None:
        meta["sampling"]["v2v_null"] = v2v_null
    if v2v_carry is not None:
        meta["sampling"]["v2v_carry"] = v2v_carry
    sampling_settings(meta)  # what the loader will check, checked before anything is written
    state = load_file(str(run / f"{BUNDLE}.safetensors"))
    dest.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()},
        str(dest / f"{BUNDLE}.safetensors"),
    )
    (dest / f"{BUNDLE}.json").write_text(json.dumps(meta, indent=1))
    log.info("exported %s (step %s) to %s", run, meta["training"]["step"], dest)
