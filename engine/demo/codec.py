"""The demo model's codec: a small learned per-frame autoencoder (temporal factor 1, spatial 8).

Frames (B, T, 3, 48, 64) in [-1, 1] <-> latents (B, T, C, 6, 8), each latent channel normalised
to zero mean and unit variance over Shapes-world renders (the statistics live in the config).
The decoder is trained on latents with Gaussian noise added, so slightly-off flow samples
still decode to clean frames.

    encoder: 8x8 space-to-depth (lossless) -> 3x3 conv + residual blocks at 6x8 -> C channels
    decoder: residual blocks at 6x8 -> x2 pixel shuffle -> residual blocks at 12x16 -> each
             position's features -> its 4x4 RGB pixels (x4 pixel shuffle) -> optionally a
             residual sharpening stage of 3x3 convolutions at full resolution
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

SPATIAL = 8


@dataclass(frozen=True)
class CodecConfig:
    """Architecture and latent normalisation (per channel) of the demo codec."""

    channels: int = 8
    width: int = 128  # features at the latent resolution
    mid: int = 96  # decoder features at twice the latent resolution
    sharpen: int = 0  # width of the full-resolution sharpening stage (0: none)
    blocks: int = 2  # residual blocks at the latent resolution (each side)
    latent_mean: tuple[float, ...] = ()
    latent_std: tuple[float, ...] = ()
    kind: str = "autoencoder"  # engine.demo.bundle tells this codec from the first model's "pca"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CodecConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown codec config field(s): {sorted(unknown)}")
        d = dict(d)
        if d.get("kind", "autoencoder") != "autoencoder":
            raise ValueError(f"not a learned demo codec: kind {d['kind']!r}")
        for key in ("latent_mean", "latent_std"):
            d[key] = tuple(float(v) for v in d.get(key, ()))
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["latent_mean"], d["latent_std"] = list(self.latent_mean), list(self.latent_std)
        return d


class ResBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class Encoder(nn.Module):
    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(3 * SPATIAL * SPATIAL, cfg.width, 3, padding=1)
        self.blocks = nn.Sequential(*(ResBlock(cfg.width) for _ in range(cfg.blocks)))
        self.conv_out = nn.Conv2d(cfg.width, cfg.channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, C, H/8, W/8), not normalised."""
        h = self.conv_in(F.pixel_unshuffle(x, SPATIAL))
        return self.conv_out(F.silu(self.blocks(h)))


class Sharpen(nn.Module):
    """A residual full-resolution stage: three 3x3 convolutions turn the decoder's RGB output
    into sharp edges and exact colours. Its last convolution starts at zero (the identity)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.conv3 = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.conv3.weight)
        nn.init.zeros_(self.conv3.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv3(F.silu(self.conv2(F.silu(self.conv1(x)))))


class Decoder(nn.Module):
    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(cfg.channels, cfg.width, 3, padding=1)
        self.blocks = nn.Sequential(*(ResBlock(cfg.width) for _ in range(cfg.blocks)))
        self.up_mid = nn.Conv2d(cfg.width, 4 * cfg.mid, 1)
        self.mid = nn.Sequential(*(ResBlock(cfg.mid) for _ in range(cfg.blocks)))
        self.conv_out = nn.Conv2d(cfg.mid, 3 * 16, 1)
        self.sharpen = Sharpen(cfg.sharpen) if cfg.sharpen else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) normalised latents -> (N, 3, 8h, 8w), unclamped."""
        h = self.blocks(self.conv_in(z))
        h = self.mid(F.pixel_shuffle(self.up_mid(F.silu(h)), 2))  # (N, mid, 2h, 2w)
        x = F.pixel_shuffle(self.conv_out(F.silu(h)), 4)  # (N, 3, 8h, 8w)
        return x if self.sharpen is None else self.sharpen(x)


class DemoCodec(nn.Module):
    """Implements engine.api.Codec. Frames (B, T, 3, H, W) float in [-1, 1], H and W multiples
    of 8; latents (B, T, C, H/8, W/8) float, roughly unit variance per channel."""

    spatial_factor = SPATIAL
    temporal_factor = 1

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)
        mean = torch.tensor(cfg.latent_mean or [0.0] * cfg.channels)
        std = torch.tensor(cfg.latent_std or [1.0] * cfg.channels)
        self.register_buffer("latent_mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("latent_std", std.view(1, -1, 1, 1), persistent=False)

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | CodecConfig) -> DemoCodec:
        return cls(cfg if isinstance(cfg, CodecConfig) else CodecConfig.from_dict(cfg))

    @property
    def channels(self) -> int:
        return self.cfg.channels

    def with_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> CodecConfig:
        """Set the per-channel latent statistics (C,); returns the config that records them."""
        self.latent_mean.copy_(mean.view(1, -1, 1, 1))
        self.latent_std.copy_(std.view(1, -1, 1, 1))
        self.cfg = dataclasses.replace(
            self.cfg, latent_mean=tuple(mean.tolist()), latent_std=tuple(std.tolist())
        )
        return self.cfg

    def with_sharpen(self, width: int, seed: int = 0) -> DemoCodec:
        """A copy with a sharpening stage of `width` added (starting as the identity), its first
        convolutions drawn from `seed` (the global random state untouched)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            codec = DemoCodec(dataclasses.replace(self.cfg, sharpen=width))
        codec = codec.to(self.latent_mean.device)
        missing, unexpected = codec.load_state_dict(self.state_dict(), strict=False)
        if unexpected or any(not k.startswith("decoder.sharpen.") for k in missing):
            raise ValueError(f"cannot add a sharpening stage: {missing=} {unexpected=}")
        return codec

    def encode_raw(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> un-normalised latents (N, C, h, w)."""
        return self.encoder(frames.to(self.latent_mean.dtype))

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) in [-1, 1] -> latents (B, T, C, H/8, W/8)."""
        b, t = frames.shape[:2]
        z = (self.encode_raw(frames.flatten(0, 1)) - self.latent_mean) / self.latent_std
        return z.reshape(b, t, *z.shape[1:])

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, T, C, h, w) -> frames (B, T, 3, 8h, 8w) in [-1, 1]."""
        b, t = latents.shape[:2]
        x = self.decoder(latents.flatten(0, 1).to(self.latent_mean.dtype)).clamp(-1, 1)
        return x.reshape(b, t, *x.shape[1:])

    def stream_decoder(self) -> FrameDecoder:
        return FrameDecoder(self)


class FrameDecoder:
    """Implements engine.api.StreamDecoder: a per-frame codec keeps no state, so each latent
    frame (B, C, h, w) decodes to exactly one video frame (B, 1, 3, H, W) as it arrives."""

    def __init__(self, codec: DemoCodec) -> None:
        self.codec = codec
        self.pushed = 0

    @torch.no_grad()
    def push(self, latent: torch.Tensor) -> torch.Tensor:
        if latent.dim() != 4:
            raise ValueError(
                f"expected one latent frame (B, C, h, w), got shape {tuple(latent.shape)}"
            )
        self.pushed += 1
        return self.codec.decode(latent[:, None])
