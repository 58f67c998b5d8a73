"""The Wan2.2 video VAE (48 latent channels, 16x spatial, 4x temporal) as the engine's Codec.

Weights and modules come from `diffusers.AutoencoderKLWan` (Wan-AI/Wan2.2-TI2V-5B-Diffusers,
subfolder `vae`). Latents are normalised as the reference does (misc/wan_vae2.py and the
`Wan-AI/...:0.6` VAE name in utils/model_setup.py):

    z = (mu - mean) * (1 / std)          per channel
    z[:, 1:] *= 0.6                      latent frames after the clip's first one

and decoding undoes both. The decoder is causal in time: it decodes one latent frame at a time
(1 video frame for the first, 4 for each after) while a per-convolution feature cache carries
the past, so a `WanStreamDecoder` fed frame by frame reproduces whole-clip decoding exactly.

`diffusers` is imported lazily so that `engine` imports without the `large` extra.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..api import EngineError

if TYPE_CHECKING:
    from diffusers import AutoencoderKLWan

log = logging.getLogger(__name__)

WAN22_REPO = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
WAN22_SUBFOLDER = "vae"
TEMPORAL_SCALE = 0.6  # the 7B config's `vae: Wan-AI/Wan2.2-TI2V-5B-Diffusers:0.6`

# per-channel statistics of Wan2.2 VAE latents, as hard-coded in the reference's misc/wan_vae2.py
# fmt: off
WAN22_MEAN: tuple[float, ...] = (
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557,
    -0.1382, 0.0542, 0.2813, 0.0891, 0.1570, -0.0098, 0.0375, -0.1825,
    -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
    -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230,
    -0.0313, -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.0520, 0.3748,
    0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
)
WAN22_STD: tuple[float, ...] = (
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013,
    0.8158, 1.0344, 0.5894, 1.0901, 0.6885, 0.6165, 0.8454, 0.4978,
    0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
    0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093,
    0.5709, 0.6065, 0.6415, 0.4944, 0.5726, 1.2042, 0.5458, 1.6887,
    0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
)
# fmt: on


@dataclass(frozen=True)
class LatentNorm:
    """Per-channel mean/std normalisation plus the extra scale of latent frames after the first."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    temporal_scale: float = 1.0

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std):
            raise ValueError(f"{len(self.mean)} means for {len(self.std)} stds")

    @classmethod
    def wan22(cls, temporal_scale: float = TEMPORAL_SCALE) -> LatentNorm:
        return cls(WAN22_MEAN, WAN22_STD, temporal_scale)

    @classmethod
    def from_config(cls, config: Any, temporal_scale: float = TEMPORAL_SCALE) -> LatentNorm:
        """From an AutoencoderKLWan config's `latents_mean` / `latents_std`."""
        return cls(tuple(config.latents_mean), tuple(config.latents_std), temporal_scale)

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.mean, dtype=torch.float32, device=like.device).view(1, 1, -1, 1, 1)
        inv_std = 1.0 / torch.tensor(self.std, dtype=torch.float32, device=like.device)
        return mean, inv_std.view(1, 1, -1, 1, 1)  # the reference multiplies by 1/std

    def _frame_scale(self, like: torch.Tensor, start: int) -> torch.Tensor:
        scale = torch.full((like.shape[1],), self.temporal_scale, device=like.device)
        if start == 0:
            scale[0] = 1.0
        return scale.view(1, -1, 1, 1, 1)

    def standardize(self, mu: torch.Tensor) -> torch.Tensor:
        """(B, t, C, h, w) float32: (mu - mean) * (1 / std) per channel."""
        mean, inv_std = self._stats(mu)
        return (mu - mean) * inv_std

    def scale_frames(self, z: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Multiply latent frames after the clip's first by `temporal_scale`; `start`: clip index of z[:, 0]."""
        return z * self._frame_scale(z, start)

    def normalize(self, mu: torch.Tensor, start: int = 0) -> torch.Tensor:
        """VAE means (B, t, C, h, w) float32 -> model latents."""
        return self.scale_frames(self.standardize(mu), start)

    def denormalize(self, z: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Model latents (B, t, C, h, w) float32 -> VAE latents; inverse of `normalize`."""
        mean, inv_std = self._stats(z)
        return (z / self._frame_scale(z, start)) / inv_std + mean


def _gaussian(shape: torch.Size, generator: torch.Generator | None) -> torch.Tensor:
    """float32 N(0, 1) drawn on the generator's device (CPU by default): same seed, same noise anywhere."""
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, dtype=torch.float32, device=device)


def add_noise(
    latent: torch.Tensor, std: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """latent + std * N(0, 1), as the reference noises a start image's latent for image-to-video."""
    return latent + std * _gaussian(latent.shape, generator).to(latent.device, latent.dtype)


def _to_bcthw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 1, 3, 4)  # (B, T, C, H, W) <-> (B, C, T, H, W)


class WanCodec:
    """Codec over an AutoencoderKLWan: frames (B, T, 3, H, W) in [-1, 1] <-> latents (B, t, C, h, w).

    Inputs are moved to the VAE's device and dtype; outputs are float32 on that device.
    """

    def __init__(
        self,
        vae: AutoencoderKLWan,
        norm: LatentNorm | None = None,
        temporal_scale: float = TEMPORAL_SCALE,
    ) -> None:
        self.vae = vae.eval().requires_grad_(False)
        cfg = vae.config
        self.norm = norm or LatentNorm.from_config(cfg, temporal_scale)
        self.channels = int(cfg.z_dim)
        if len(self.norm.mean) != self.channels:
            raise EngineError(
                f"latent statistics have {len(self.norm.mean)} channels, the VAE {self.channels}"
            )
        self.patch_size = int(cfg.patch_size or 1)
        self.spatial_factor = 2 ** (len(cfg.dim_mult) - 1) * self.patch_size
        self.temporal_factor = 2 ** sum(bool(t) for t in cfg.temperal_downsample)
        self._decoder_convs = _count_causal_convs(vae.decoder)

    @classmethod
    def from_pretrained(
        cls,
        repo_or_path: str = WAN22_REPO,
        *,
        subfolder: str | None = WAN22_SUBFOLDER,
        revision: str | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        temporal_scale: float = TEMPORAL_SCALE,
        local_files_only: bool = False,
    ) -> WanCodec:
        """Load the Wan2.2 VAE with the reference's normalisation from a Hub repo or a local folder
        (the repo's layout, or the `vae` folder itself). The reference's Wan2.2_VAE.pth goes
        through `parts.locate` first, which converts it once into a folder."""
        from diffusers import AutoencoderKLWan

        try:
            vae = AutoencoderKLWan.from_pretrained(
                repo_or_path,
                subfolder=subfolder,
                revision=revision,
                torch_dtype=dtype,
                local_files_only=local_files_only,
            )
        except (OSError, ValueError) as exc:
            raise EngineError(f"cannot load the video VAE {repo_or_path!r}: {exc}") from exc
        norm = LatentNorm.wan22(temporal_scale)
        _warn_if_stats_differ(vae.config, norm)
        log.info("loaded video VAE %s (%s)", repo_or_path, dtype)
        return cls(vae.to(device), norm)

    # ---- placement ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def to(
        self, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> WanCodec:
        self.vae.to(device=device, dtype=dtype)
        return self

    def eval(self) -> WanCodec:
        return self

    # ---- encode ---------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(
        self,
        frames: torch.Tensor,
        *,
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Frames (B, T, 3, H, W) in [-1, 1] -> latents (B, (T-1)//4+1, C, H/16, W/16) float32.

        sample=False takes the posterior mean; sample=True adds posterior noise as the reference
        does (to the normalised mean, with the VAE's own std, before the temporal scale).
        """
        self._check_frames(frames)
        x = _to_bcthw(frames.to(self.device, self.dtype))
        posterior = self.vae.encode(x).latent_dist
        z = self.norm.standardize(_to_bcthw(posterior.mean).float())  # (B, t, C, h, w)
        if sample:
            std = _to_bcthw(posterior.std).float()
            z = z + std * _gaussian(std.shape, generator).to(std.device)
        return self.norm.scale_frames(z)

    def _check_frames(self, frames: torch.Tensor) -> None:
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise EngineError(f"expected frames (B, T, 3, H, W), got {tuple(frames.shape)}")
        h, w = frames.shape[-2:]
        if h % self.spatial_factor or w % self.spatial_factor:
            raise EngineError(f"frame size {w}x{h} is not a multiple of {self.spatial_factor}")

    # ---- decode ---------------------------------------------------------------------------------
    def stream_decoder(self) -> WanStreamDecoder:
        return WanStreamDecoder(self)

    def iter_decode(
        self, latents: torch.Tensor, chunk: int = 1, out_device: str | torch.device | None = None
    ) -> Iterator[torch.Tensor]:
        """Latents (B, t, C, h, w) -> video frames (B, n, 3, H, W), `chunk` latent frames at a time.

        Only one latent frame's activations are alive at once; `out_device` (e.g. "cpu") moves
        each chunk off the accelerator as soon as it is decoded.
        """
        decoder = self.stream_decoder()
        for begin in range(0, latents.shape[1], chunk):
            part = [
                decoder.push(latents[:, t])
                for t in range(begin, min(begin + chunk, latents.shape[1]))
            ]
            frames = torch.cat(part, dim=1)
            yield frames.to(out_device) if out_device is not None else frames

    def decode(
        self, latents: torch.Tensor, chunk: int = 4, out_device: str | torch.device | None = None
    ) -> torch.Tensor:
        """Latents (B, t, C, h, w) -> frames (B, (t-1)*4+1, 3, H, W) float32 in [-1, 1]."""
        if latents.ndim != 5 or latents.shape[2] != self.channels:
            raise EngineError(
                f"expected latents (B, t, {self.channels}, h, w), got {tuple(latents.shape)}"
            )
        return torch.cat(list(self.iter_decode(latents, chunk, out_device)), dim=1)

    def _decode_step(self, z: torch.Tensor, cache: list, first: bool) -> torch.Tensor:
        """One VAE latent frame (B, 1, C, h, w), unnormalised -> its video frames (B, n, 3, H, W)."""
        from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

        x = self.vae.post_quant_conv(_to_bcthw(z.to(self.device, self.dtype)))
        out = self.vae.decoder(x, feat_cache=cache, feat_idx=[0], first_chunk=first)
        if self.patch_size > 1:
            out = unpatchify(out, patch_size=self.patch_size)
        return _to_bcthw(out.clamp(-1.0, 1.0)).float()


class WanStreamDecoder:
    """Decodes latent frames one at a time, keeping the decoder's causal feature cache between calls."""

    def __init__(self, codec: WanCodec) -> None:
        self.codec = codec
        self.index = 0  # latent frames decoded so far
        self._cache: list = [None] * codec._decoder_convs

    @torch.no_grad()
    def push(self, latent: torch.Tensor) -> torch.Tensor:
        """latent (B, C, h, w) model-normalised -> (B, n, 3, H, W) float32 in [-1, 1]; n = 1, then 4."""
        if latent.ndim != 4 or latent.shape[1] != self.codec.channels:
            raise EngineError(
                f"expected a latent frame (B, {self.codec.channels}, h, w), got {tuple(latent.shape)}"
            )
        z = self.codec.norm.denormalize(latent[:, None].float(), start=self.index)
        frames = self.codec._decode_step(z, self._cache, first=self.index == 0)
        self.index += 1
        return frames


def _count_causal_convs(module: torch.nn.Module) -> int:
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d

    return sum(isinstance(m, WanCausalConv3d) for m in module.modules())


def _warn_if_stats_differ(config: Any, norm: LatentNorm, tol: float = 1e-4) -> None:
    theirs = tuple(getattr(config, "latents_mean", ())) + tuple(getattr(config, "latents_std", ()))
    ours = norm.mean + norm.std
    same = len(theirs) == len(ours) and all(
        abs(a - b) <= tol for a, b in zip(theirs, ours, strict=True)
    )
    if not same:
        log.warning("the VAE config's latent statistics differ from the reference's; using those")
