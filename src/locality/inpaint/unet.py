"""The paper's U-Net of partial convolutions (Liu et al., 2018, section 3.3), scaled down for a CPU.

Encoder: ``len(channels)`` stride-2 partial convolutions with ReLU, each halving the size and
updating the mask. Decoder: nearest-neighbour upsampling of features and mask, concatenation with
the encoder's features and mask at that size (the last level with the input image and mask),
and a stride-1 partial convolution with LeakyReLU(0.2) (none after the last). The decoder
layers see a mask per channel (``multi_channel=True``), so a concatenation keeps each part's holes.
No batch normalisation (the paper uses it; small CPU batches train well without it).

``partial=False`` builds the paper's main ablation with the same parameters: ordinary
``torch.nn.Conv2d`` layers, the holes of the input filled with zeros, and no mask anywhere else.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from locality.layers.partial import PartialConv2d

__all__ = ["InpaintingUNet"]


class InpaintingUNet(nn.Module):
    """U-Net inpainting ``(N, 3, H, W)`` images in ``[-1, 1]`` given ``(N, 1, H, W)`` masks.

    Args:
        channels: width of each encoder level (the decoder mirrors it).
        kernel_sizes: kernel of each encoder level; decoder levels use 3.
        partial: partial convolutions (``True``) or ordinary ones on a zero-filled input.
        image_channels: channels of the image (3 for RGB).

    Shape:
        - Image: ``(N, image_channels, H, W)``, ``H`` and ``W`` multiples of
          ``2 ** len(channels)``.
        - Mask: ``(N, 1, H, W)`` or ``(1, 1, H, W)``, 1 valid, 0 hole.
        - Output: ``(N, image_channels, H, W)``, the prediction everywhere (not composited).
    """

    def __init__(
        self,
        channels: tuple[int, ...] = (16, 32, 64, 64, 64),
        kernel_sizes: tuple[int, ...] = (5, 3, 3, 3, 3),
        partial: bool = True,
        image_channels: int = 3,
    ) -> None:
        super().__init__()
        if len(channels) != len(kernel_sizes) or not channels:
            raise ValueError(
                f"InpaintingUNet: channels and kernel_sizes must be non-empty and of equal "
                f"length, got {channels} and {kernel_sizes}"
            )
        self.channels = tuple(channels)
        self.kernel_sizes = tuple(kernel_sizes)
        self.partial = partial
        self.image_channels = image_channels
        widths = (image_channels, *channels)
        self.encoder = nn.ModuleList(
            self._conv(widths[i], widths[i + 1], k, stride=2, multi_channel=False)
            for i, k in enumerate(kernel_sizes)
        )
        # Decoder level i: (widths[i + 1] upsampled + widths[i] from the skip) -> widths[i].
        self.decoder = nn.ModuleList(
            self._conv(widths[i + 1] + widths[i], widths[i], 3, stride=1, multi_channel=True)
            for i in range(len(channels))
        )

    def _conv(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        multi_channel: bool,
    ) -> nn.Conv2d:
        padding = kernel_size // 2
        if self.partial:
            return PartialConv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                multi_channel=multi_channel,
                return_mask=True,
            )
        return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        factor = 2 ** len(self.channels)
        if image.dim() != 4 or image.shape[2] % factor or image.shape[3] % factor:
            raise ValueError(
                f"InpaintingUNet: expected an (N, C, H, W) image with H and W multiples of "
                f"{factor}, got shape {tuple(image.shape)}"
            )
        x = image * mask
        if not self.partial:
            return self._forward_conv(x)
        m = mask.expand(image.shape[0], 1, *image.shape[2:])
        skips = [(x, m)]
        for layer in self.encoder:
            x, m = layer(x, m)
            x = F.relu(x)
            skips.append((x, m))
        skips.pop()
        for i, layer in reversed(list(enumerate(self.decoder))):
            skip_x, skip_m = skips[i]
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            m = F.interpolate(m, scale_factor=2, mode="nearest")
            masks = torch.cat([m.expand_as(x), skip_m.expand_as(skip_x)], dim=1)
            x, m = layer(torch.cat([x, skip_x], dim=1), masks)
            m = m[:, :1]
            if i > 0:
                x = F.leaky_relu(x, 0.2)
        return x

    def _forward_conv(self, x: torch.Tensor) -> torch.Tensor:
        """The ablation: the same layers as ordinary convolutions on the zero-filled image."""
        skips = [x]
        for layer in self.encoder:
            x = F.relu(layer(x))
            skips.append(x)
        skips.pop()
        for i, layer in reversed(list(enumerate(self.decoder))):
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = layer(torch.cat([x, skips[i]], dim=1))
            if i > 0:
                x = F.leaky_relu(x, 0.2)
        return x
