"""keras_gen layers."""

from keras_gen.layers.backbones import GatedPixelCNNBackbone, PixelCNNBackbone, PixelRNNBackbone
from keras_gen.layers.conditioning import ConditionBias
from keras_gen.layers.gated import GatedBlock, gated_activation, shift_down
from keras_gen.layers.heads import AutoregressiveHead
from keras_gen.layers.latent import CategoricalCode
from keras_gen.layers.masked_conv import ClassBias, MaskedConv2D, MaskedResidualBlock, causal_mask
from keras_gen.layers.quantize import VectorQuantizer
from keras_gen.layers.recurrent import DiagonalBiLSTM, DiagonalLSTM, RowLSTM, skew, unskew
from keras_gen.layers.unet import (
    UNetAttention,
    UNetBackbone,
    UNetResidualBlock,
    sinusoidal_embedding,
)
