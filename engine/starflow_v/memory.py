"""GPU memory of the 7B's real code path, measured without a GPU.

The flow, text encoder and VAE are built on the meta device at their true sizes (no weights are
allocated), the pipeline generates a clip through the same code a GPU runs, and a ledger sees
every tensor the run creates on that device and when each is freed: its peak is what the GPU
would hold (PyTorch's caching allocator and the CUDA context come on top). Data-dependent
answers (Jacobi's convergence test) read as "not yet", so each Jacobi loop runs its fixed
iteration count.

    report = measure(LargeOptions(offload=True, window=6), frames=81)
    report.peak_gib, report.at_peak  # bytes by part when the peak was reached
"""

from __future__ import annotations

import json
import weakref
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..api import GenerateRequest
from ..config import FlowConfig
from ..model import StarFlow
from ..model import layers as layer_module
from ..model.rope import Rotary
from ..offload import enable_offload
from .hub import MANIFEST_PATH
from .loader import LargeOptions, assemble

GIB = 2**30
DEVICE = torch.device("meta")
HOST = "host"  # a part kept in CPU memory: counted apart, never in the device's peak
# flan-t5-xl's encoder
T5_XL = dict(
    vocab_size=32128,
    d_model=2048,
    d_kv=64,
    d_ff=5120,
    num_layers=24,
    num_heads=32,
    feed_forward_proj="gated-gelu",
    dropout_rate=0.0,
)


class Ledger(TorchDispatchMode):
    """Counts the bytes of every storage alive on `device`, by the part that made it."""

    def __init__(self, device: torch.device = DEVICE) -> None:
        super().__init__()
        self.device = device
        self.live: Counter[str] = Counter()
        self.most: Counter[str] = Counter()  # each part's own peak
        self.peak, self.at_peak = 0, Counter()
        self.caches: list[int] = []  # bytes of each KV cache made
        self.parts = ["sampling"]
        self._storages: dict[int, list] = {}  # storage key -> [bytes, part, tensors alive]
        self._tensors: set[int] = set()

    @property
    def total(self) -> int:
        return sum(n for part, n in self.live.items() if part != HOST)

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        self.parts.append(name)
        try:
            yield
        finally:
            self.parts.pop()

    def add(self, part: str, nbytes: int) -> None:
        self.live[part] += nbytes
        self.most[part] = max(self.most[part], self.live[part])
        if self.total > self.peak:
            self.peak, self.at_peak = self.total, Counter(self.live)
            self.at_peak.pop(HOST, None)

    def remove(self, part: str, nbytes: int) -> None:
        self.live[part] -= nbytes

    def track(self, t: torch.Tensor) -> None:
        if id(t) in self._tensors:
            return
        key = t.untyped_storage()._cdata
        entry = self._storages.get(key)
        if entry is None:
            entry = self._storages[key] = [t.untyped_storage().nbytes(), self.parts[-1], 0]
            self.add(entry[1], entry[0])
        entry[2] += 1
        self._tensors.add(id(t))
        weakref.finalize(t, self._release, id(t), key)

    def _release(self, tensor_id: int, key: int) -> None:
        self._tensors.discard(tensor_id)
        entry = self._storages[key]
        entry[2] -= 1
        if entry[2] == 0:
            del self._storages[key]
            self.remove(entry[1], entry[0])

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and args[0].device == self.device:
            return False  # a data-dependent test (convergence): "not yet"
        if func is torch.ops.aten._to_copy.default and _leaves(args[0], kwargs, self.device):
            return torch.zeros(args[0].shape, dtype=kwargs.get("dtype") or args[0].dtype)
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device == self.device:
                self.track(t)
        return out


def _leaves(t: torch.Tensor, kwargs: dict | None, device: torch.device) -> bool:
    """A copy from the measured device to the host (frames for the screen): zeros stand in."""
    target = (kwargs or {}).get("device")
    return t.device == device and target is not None and torch.device(target).type == "cpu"


def module_bytes(module: nn.Module, device: torch.device = DEVICE) -> int:
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors if t.device == device)


@contextmanager
def attributed(ledger: Ledger, module: nn.Module, part: str, visits: bool = False):
    """Allocations inside `module`'s forward count for `part`; with `visits`, its weights (held
    elsewhere between uses) count for the length of each call, as a device copy would."""

    def enter(*_):
        ledger.parts.append(part)
        if visits:
            ledger.add(f"{part} weights", module_bytes(module))

    def leave(*_):
        if visits:
            ledger.remove(f"{part} weights", module_bytes(module))
        ledger.parts.pop()

    handles = [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def fused_attention(ledger: Ledger):
    """Attention on the measured device as a GPU's fused kernel holds it: the output, the
    softmax's row statistics (fp32) and a mask converted to the query's dtype, never the (S, S)
    scores that the meta device's reference decomposition would make."""
    original = F.scaled_dot_product_attention

    def attention(q, k, v, attn_mask=None, *args, **kwargs):
        if q.device != ledger.device:
            return original(q, k, v, attn_mask, *args, **kwargs)
        stats = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
        bias = (
            None
            if attn_mask is None
            else torch.empty(attn_mask.shape, dtype=q.dtype, device=q.device)
        )
        del stats, bias
        return torch.empty(*q.shape[:-1], v.size(-1), dtype=q.dtype, device=q.device)

    F.scaled_dot_product_attention = attention
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


@contextmanager
def kv_cache_part(ledger: Ledger):
    """The KV caches' own allocations count as 'kv cache'."""
    original = layer_module.KVCache.__init__

    def init(self, *args, **kwargs):
        with ledger.part("kv cache"):
            original(self, *args, **kwargs)
        ledger.caches.append(self.k.nbytes + self.v.nbytes)

    layer_module.KVCache.__init__ = init
    try:
        yield
    finally:
        layer_module.KVCache.__init__ = original


def flow_config(window: int | None = None) -> FlowConfig:
    cfg = FlowConfig.from_dict(json.loads(MANIFEST_PATH.read_text())["config"])
    return cfg.replace(local_attn_window=window) if window else cfg


def host_rotaries(model: nn.Module) -> None:
    """Rotary tables made on the host, as a model built on the host and moved has them (a model
    built straight on another device would make them there)."""
    for m in model.modules():
        r = getattr(m, "rotary", None)
        if isinstance(r, Rotary):
            m.rotary = Rotary(2 * (2 * len(r.freqs) + len(r.freqs_t)))


def build_flow(cfg: FlowConfig, dtype: torch.dtype, offload: bool) -> StarFlow:
    """The flow on the meta device; with `offload`, its offloaded modules' host copies in
    (uninitialised) CPU memory, as the Offloader keeps them."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(DEVICE):
            flow = StarFlow(cfg).eval().requires_grad_(False)
    finally:
        torch.set_default_dtype(default)
    host_rotaries(flow)
    if offload:
        for m in flow.shallow + [flow.learnable_self_denoiser]:
            m.to_empty(device="cpu")
        enable_offload(flow, DEVICE)
    return flow


def build_pipeline(options: LargeOptions, dtype: torch.dtype, tiny: dict | None = None):
    """The 7B's pipeline on the meta device (tiny: small configs of the same code, for tests)."""
    import diffusers
    import transformers

    from .text import T5TextEncoder
    from .vae import WanCodec
    from .wan_vae import WAN22_CONFIG

    tiny = tiny or {}
    cfg = flow_config(options.window).replace(**tiny.get("flow", {}))
    flow = build_flow(cfg, dtype, options.offload)
    with torch.device(DEVICE):
        t5 = transformers.T5EncoderModel(transformers.T5Config(**{**T5_XL, **tiny.get("t5", {})}))
        vae = diffusers.AutoencoderKLWan.from_config({**WAN22_CONFIG, **tiny.get("vae", {})})
    text = T5TextEncoder(t5.to(dtype), word_tokenizer(), device=DEVICE, max_tokens=cfg.txt_size)
    codec = WanCodec(vae.to(dtype))
    side = tiny.get("side", options.side)
    return assemble(flow, codec, text, replace(options, side=side))


def word_tokenizer():
    """A tokenizer built offline: the run's memory does not depend on the words."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tok = Tokenizer(models.WordLevel({"<pad>": 0, "</s>": 1, "<unk>": 2}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


@dataclass(frozen=True)
class Report:
    peak: int  # bytes
    at_peak: dict[str, int]  # bytes by part at the peak
    weights: int  # the flow's weights resident on the device
    kv_cache: int  # the KV caches' bytes at their largest
    caches: tuple[int, ...]  # bytes of each KV cache made (the deep block's is the largest)
    frames: int

    @property
    def peak_gib(self) -> float:
        return self.peak / GIB


def measure(
    options: LargeOptions,
    frames: int = 81,
    guidance: float = 3.5,
    dtype: torch.dtype = torch.bfloat16,
    jacobi_iterations: int = 1,
    tiny: dict | None = None,
    first_frame_only: bool = False,
) -> Report:
    """Peak device memory of one text-to-video clip of `frames` frames through the real pipeline.
    Memory does not depend on how many Jacobi iterations run, so one per block is enough;
    `first_frame_only` stops after the first frame (the caches are made for the whole clip)."""
    options = replace(options, jacobi_max_iter=jacobi_iterations)
    pipeline = build_pipeline(options, dtype, tiny)
    ledger = Ledger()
    weights = module_bytes(pipeline.model)
    ledger.add("flow weights", weights)
    vae = HOST if options.vae_on_cpu else "vae"  # the VAE in CPU memory does not count
    ledger.add(HOST if options.vae_on_cpu else "vae weights", module_bytes(pipeline.codec.vae))
    model = pipeline.model
    request = GenerateRequest("a measured clip", frames=frames, seed=0, guidance=guidance)
    made = 0
    with (
        attributed(ledger, pipeline.text.model, "text encoder", visits=True),
        attributed(ledger, model.learnable_self_denoiser, "denoiser"),
        attributed(ledger, pipeline.codec.vae, vae),
        # streaming decode calls the decoder's parts, not the VAE's forward
        attributed(ledger, pipeline.codec.vae.post_quant_conv, vae),
        attributed(ledger, pipeline.codec.vae.decoder, vae),
        kv_cache_part(ledger),
        fused_attention(ledger),
        ledger,
    ):
        for event in pipeline.generate(request):
            made = event.done
            if first_frame_only:
                break
    return Report(
        ledger.peak,
        dict(ledger.at_peak),
        weights,
        ledger.most["kv cache"],
        tuple(ledger.caches),
        made,
    )
