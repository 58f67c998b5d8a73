"""STARFlow-V: shallow per-frame flow blocks, a deep causal top block with text, a learnable denoiser.

Data direction (likelihood): latents -> patchify -> shallow blocks (each frame alone) -> top block
(all frames, causal in time, text-conditioned) -> noise. Tensor names follow the reference
`transformer_flow.Model` so its checkpoints load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.config import FlowConfig

from .denoiser import Denoiser
from .flow_block import FlowBlock

DENOISE_STEP = 0.3  # the reference's constant: x <- x - 0.3 * denoiser(x)


def block_orders(cfg: FlowConfig) -> list[str]:
    """Token order of each block, bottom to top (the reference's permutation schedule)."""
    kinds = ["identity", "flip_in_frame" if cfg.temporal_causal else "flip"]
    n = cfg.num_blocks
    if cfg.seq_order == "R2L":
        return [kinds[i % 2] for i in range(n - 1)] + [kinds[(n - 1) % 2]]
    return [kinds[(i + 1) % 2] for i in range(n - 1)] + [kinds[n % 2]]


class StarFlow(nn.Module):
    def __init__(self, cfg: FlowConfig) -> None:
        super().__init__()
        self.cfg = cfg
        orders = block_orders(cfg)
        common = dict(
            expansion=cfg.expansion,
            soft_clip=cfg.soft_clip,
            use_softplus=cfg.use_softplus,
            use_final_norm=cfg.use_final_norm,
            pt_seq_len=cfg.rope_seq_len,
        )
        token_ch = cfg.token_channels
        blocks = [
            FlowBlock(
                token_ch,
                cfg.channels,
                n,
                cfg.head_dim,
                0 if cfg.cond_top_only else cfg.txt_dim,
                orders[i],
                **common,
            )
            for i, n in enumerate(cfg.layers_per_block[:-1])
        ]
        blocks.append(
            FlowBlock(
                token_ch,
                cfg.top_channels,
                cfg.layers_per_block[-1],
                cfg.head_dim,
                cfg.txt_dim,
                orders[-1],
                local_attn_window=cfg.local_attn_window,
                **common,
            )
        )
        self.blocks = nn.ModuleList(blocks)
        if cfg.learnable_self_denoiser:
            self.learnable_self_denoiser = Denoiser(
                token_ch,
                cfg.channels,
                cfg.denoiser_layers,
                cfg.head_dim,
                cfg.txt_dim if cfg.conditional_denoiser else 0,
                expansion=cfg.expansion,
                use_final_norm=cfg.use_final_norm,
                pt_seq_len=cfg.rope_seq_len,
                block_causal=cfg.temporal_causal,
                window=cfg.denoiser_window,
            )

    @property
    def top(self) -> FlowBlock:
        return self.blocks[-1]

    @property
    def shallow(self) -> list[FlowBlock]:
        return list(self.blocks[:-1])

    # ---- layout ----------------------------------------------------------------------------------
    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, T, H/p, W/p, p*p*C), channel order (p1, p2, c)."""
        p = self.cfg.patch_size
        b, t, c, hh, ww = x.shape
        if hh % p or ww % p:
            raise ValueError(f"latent size {hh}x{ww} is not a multiple of the patch size {p}")
        x = x.reshape(b, t, c, hh // p, p, ww // p, p)
        return x.permute(0, 1, 3, 5, 4, 6, 2).reshape(b, t, hh // p, ww // p, p * p * c)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        p = self.cfg.patch_size
        b, t, h, w, _ = x.shape
        x = x.reshape(b, t, h, w, p, p, -1)
        return x.permute(0, 1, 6, 2, 4, 3, 5).reshape(b, t, -1, h * p, w * p)

    # ---- likelihood ------------------------------------------------------------------------------
    def shallow_forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Patchified x (B, T, h, w, c) through the shallow blocks, each frame on its own."""
        b, t, h, w, c = x.shape
        from engine.offload import resident

        outputs, logdets = [x], []
        for block in self.shallow:
            with resident(self, block):
                dev = block.proj_in.weight.device
                x, logdet = block(x.to(dev).reshape(b * t, 1, h, w, c))
            x = x.reshape(b, t, h, w, c)
            logdets.append(logdet.reshape(b, t, h * w, c))
            outputs.append(x)
        return x, outputs, logdets

    def forward(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Latents x (B, T, C, H, W), text y (B, L, D) -> noise z (same layout as x), the patchified
        tensor entering each block (+ the top output), and each block's log-determinant terms."""
        h, outputs, logdets = self.shallow_forward(self.patchify(x))
        z, logdet = self.top(h, y)
        outputs.append(z)
        logdets.append(logdet)
        return self.unpatchify(z), outputs, logdets

    @staticmethod
    def loss(z: torch.Tensor, logdets: list[torch.Tensor]) -> torch.Tensor:
        """Mean over the batch of 0.5 * mean(z^2) - sum_i mean(logdet_i) (the reference get_loss)."""
        dims = lambda t: tuple(range(1, t.dim()))  # noqa: E731
        nll = 0.5 * z.float().pow(2).mean(dim=dims(z))
        nll = nll - sum(ld.mean(dim=dims(ld)) for ld in logdets)
        return nll.mean()

    def denoiser(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The learnable denoiser's output for latents x (B, T, C, H, W); same layout."""
        from engine.offload import resident

        den = self.learnable_self_denoiser
        with resident(self, den):
            dev = den.proj_in.weight.device
            y = y.to(dev) if y is not None and self.cfg.conditional_denoiser else None
            out = den(self.patchify(x.to(dev)), y).to(x.device)
        return self.unpatchify(out)

    def denoise(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return x - DENOISE_STEP * self.denoiser(x, y).to(x.dtype)
