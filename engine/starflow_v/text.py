"""The 7B model's text side: the reference's prompt template and a flan-t5-xl encoder.

The released STARFlow-V was trained with captions wrapped as (utils/common.py `preprocess_text`,
with fps_cond=1, cond_noise_level=1, mix_aspect=1 and noise_std=0.5):

    "Noise Level 500:\\nA video with 16 fps:\\n{caption}\\n\\n in a 16:9 aspect ratio.\\n"

The caption carries the task prefix ("(extend) ", "(v2v) ") when there is one; the guidance
(null) prompt is the empty caption through the same template. Tokens: padded/truncated to 256,
embeddings of padding positions zeroed.

`transformers` is imported lazily so that `engine` imports without the `large` extra.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..api import TASK_PREFIX, EngineError

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

T5_REPO = "google/flan-t5-xl"
MAX_TOKENS = 256  # the 7B config's txt_size
NOISE_STD = 0.5  # the 7B config's noise_std (conditioned on through the prompt)


def noise_level(noise_std: float) -> int:
    """The integer the template shows for a noise level: int(std * 1000), truncating as the reference."""
    return int(noise_std * 1000)


def format_prompt(
    caption: str,
    *,
    fps: int | None = 16,
    noise_std: float | None = NOISE_STD,
    aspect_ratio: str | None = "16:9",
    mode: str = "t2v",
) -> str:
    """The exact string the reference feeds the text encoder.

    fps > 0: a video line; fps == 0: the image line; None: no line. noise_std None: no noise
    line; aspect_ratio None: no aspect line. `mode` adds the task prefix before the caption.
    """
    text = TASK_PREFIX[mode] + caption
    if fps is not None:
        text = f"A video with {fps} fps:\n{text}\n" if fps > 0 else f"An image:\n{text}\n"
    if noise_std is not None:
        text = f"Noise Level {noise_level(noise_std)}:\n{text}"
    if aspect_ratio is not None:
        text = f"{text}\n in a {aspect_ratio} aspect ratio.\n"
    return text


@dataclass(frozen=True)
class PromptTemplate:
    """Callable caption -> encoder string for one output setting (Pipeline's `prompt_format`).

    The caption passed in already carries its task prefix (GenerateRequest.text).
    """

    fps: int | None = 16
    noise_std: float | None = NOISE_STD
    aspect_ratio: str | None = "16:9"

    def __call__(self, caption: str) -> str:
        return format_prompt(
            caption, fps=self.fps, noise_std=self.noise_std, aspect_ratio=self.aspect_ratio
        )

    @property
    def null(self) -> str:
        """The guidance prompt: the empty caption through the same template."""
        return self("")


def _dtype_kwargs(dtype: torch.dtype) -> dict[str, Any]:
    """`dtype=` for transformers >= 4.56, `torch_dtype=` before."""
    import transformers

    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


class T5TextEncoder:
    """flan-t5-xl encoder: strings -> (B, 256, 2048) float32 embeddings (padding zeroed), (B, 256) bool mask.

    With `offload_after_use`, the encoder waits on `offload_device` (CPU) and visits `device`
    only while encoding, freeing GPU memory for the flow between prompts.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_tokens: int = MAX_TOKENS,
        device: str | torch.device | None = None,
        offload_after_use: bool = False,
        offload_device: str | torch.device = "cpu",
    ) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.dim = int(model.config.d_model)
        self.device = torch.device(device) if device is not None else model.device
        self.offload_after_use = offload_after_use
        self.offload_device = torch.device(offload_device)
        self.model.to(self.offload_device if offload_after_use else self.device)

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo: str = T5_REPO,
        *,
        revision: str | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        local_files_only: bool = False,
        **options: Any,
    ) -> T5TextEncoder:
        """Load tokenizer and encoder from a local folder or a Hub repo (the HF cache; offline-safe)."""
        from transformers import AutoTokenizer, T5EncoderModel

        common = {"revision": revision, "local_files_only": local_files_only}
        try:
            tokenizer = AutoTokenizer.from_pretrained(path_or_repo, **common)
            model = T5EncoderModel.from_pretrained(path_or_repo, **common, **_dtype_kwargs(dtype))
        except (OSError, ValueError) as exc:
            raise EngineError(f"cannot load the text encoder {path_or_repo!r}: {exc}") from exc
        log.info("loaded text encoder %s (%s)", path_or_repo, dtype)
        return cls(model, tokenizer, device=device, **options)

    @classmethod
    def from_config(
        cls, config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase, **options: Any
    ) -> T5TextEncoder:
        """A randomly initialised encoder of `config` (tests, small models)."""
        from transformers import T5EncoderModel

        return cls(T5EncoderModel(config), tokenizer, **options)

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Strings -> input ids (B, L) int64 and attention mask (B, L) int64, L = max_tokens."""
        tokens = self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        )
        return tokens["input_ids"], tokens["attention_mask"]

    @torch.no_grad()
    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Strings (already templated) -> embeddings (B, L, dim) float32 on `device`, mask (B, L) bool."""
        if not texts:
            raise EngineError("no text to encode")
        ids, mask = self.tokenize(texts)
        ids, mask = ids.to(self.device), mask.to(self.device)
        if self.offload_after_use:
            self.model.to(self.device)
        try:
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        finally:
            if self.offload_after_use:
                self._offload()
        emb = hidden.float() * mask.unsqueeze(-1)  # (B, L, D), padding zeroed
        return emb, mask.bool()

    def _offload(self) -> None:
        self.model.to(self.offload_device)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
