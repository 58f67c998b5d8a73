"""STARFlow-V modules: one concept per file."""

from .denoiser import Denoiser
from .flow_block import FlowBlock
from .layers import KVCache
from .starflow import StarFlow

__all__ = ["Denoiser", "FlowBlock", "KVCache", "StarFlow"]
