"""Flax NNX models: the ECG encoder family, projection heads and the roles models play."""

from acl_jax.models.batchnorm import MaskedBatchNorm
from acl_jax.models.encoder import BACKBONES, ECGEncoder, Features, masked_pool, register_backbone
from acl_jax.models.heads import MLPHead
from acl_jax.models.resnet1d import DEFAULT_LAYOUT, LAYOUTS, ResNet1d
from acl_jax.models.roles import Encoder, Trainable
from acl_jax.models.transformer import PatchTransformer  # registers backbone "transformer"

__all__ = [
    "BACKBONES",
    "DEFAULT_LAYOUT",
    "LAYOUTS",
    "ECGEncoder",
    "Encoder",
    "Features",
    "MLPHead",
    "MaskedBatchNorm",
    "PatchTransformer",
    "ResNet1d",
    "Trainable",
    "masked_pool",
    "register_backbone",
]
