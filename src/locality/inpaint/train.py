"""Training the inpainting U-Net on random crops of the training images, with the paper's L1 terms.

Loss (Liu et al., 2018, eq. 7, the two per-pixel terms only):
``L = L_valid + 6 L_hole``, ``L_valid = mean(|M * (out - gt)|)``, ``L_hole = mean(|(1 - M) *
(out - gt)|)``, both averaged over every pixel and channel. The perceptual, style and total
variation terms are not used: they need a pretrained VGG-16 (not available offline) and more
compute than a CPU run allows.

Crops are drawn from the training images at several scales, flipped at random, and paired with
masks from a pool of procedurally drawn strokes (``masks.stroke_mask``) whose hole ratios cover
10-50%. One seed fixes the initialisation, the crops and the masks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from locality.inpaint.images import TRAIN_IMAGES, load_image, resize_shorter
from locality.inpaint.masks import stroke_mask
from locality.inpaint.unet import InpaintingUNet

__all__ = ["TrainConfig", "inpainting_loss", "train_inpainting", "to_network", "from_network"]

HOLE_WEIGHT = 6.0  # the paper's weight of the hole term


@dataclass(frozen=True)
class TrainConfig:
    """Everything that fixes a training run (stored in the checkpoint)."""

    partial: bool = True
    steps: int = 2000
    batch_size: int = 8
    crop: int = 64
    lr: float = 1e-3
    seed: int = 0
    scales: tuple[int, ...] = (128, 160, 192)
    mask_pool: int = 1000
    channels: tuple[int, ...] = (16, 32, 64, 64, 64)
    kernel_sizes: tuple[int, ...] = (5, 3, 3, 3, 3)
    train_images: tuple[str, ...] = field(default=TRAIN_IMAGES)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def to_network(image: torch.Tensor) -> torch.Tensor:
    """``[0, 1]`` pixels to the network's ``[-1, 1]``; holes filled with 0 are then mid-grey."""
    return image * 2 - 1


def from_network(output: torch.Tensor) -> torch.Tensor:
    """The network's ``[-1, 1]`` back to ``[0, 1]`` pixels, clipped."""
    return ((output + 1) / 2).clamp(0, 1)


def inpainting_loss(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``L_valid + 6 L_hole`` (see the module docstring); ``mask`` is 1 on valid pixels."""
    error = (output - target).abs()
    valid = (error * mask).mean()
    hole = (error * (1 - mask)).mean()
    return valid + HOLE_WEIGHT * hole


def _mask_pool(config: TrainConfig, rng: np.random.Generator) -> torch.Tensor:
    masks = []
    for _ in range(config.mask_pool):
        low = rng.uniform(0.05, 0.5)
        masks.append(stroke_mask((config.crop, config.crop), low, low + 0.1, rng))
    return torch.from_numpy(np.stack(masks)[:, None])


def _batch(
    images: Sequence[torch.Tensor],
    masks: torch.Tensor,
    config: TrainConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    crops = []
    size = config.crop
    for index in torch.randint(len(images), (config.batch_size,), generator=generator).tolist():
        image = images[index]
        top = int(torch.randint(image.shape[1] - size + 1, (1,), generator=generator))
        left = int(torch.randint(image.shape[2] - size + 1, (1,), generator=generator))
        crop = image[:, top : top + size, left : left + size]
        if torch.rand((), generator=generator) < 0.5:
            crop = crop.flip(-1)
        crops.append(crop)
    picks = torch.randint(len(masks), (config.batch_size,), generator=generator)
    mask = masks[picks]
    if torch.rand((), generator=generator) < 0.5:
        mask = mask.transpose(-1, -2)
    if torch.rand((), generator=generator) < 0.5:
        mask = mask.flip(-2)
    return torch.stack(crops), mask


def train_inpainting(
    config: TrainConfig, log: Callable[[int, float, float], None] | None = None
) -> tuple[InpaintingUNet, dict]:
    """Train one U-Net; return it (in eval mode) and a summary of the run.

    ``log(step, loss, seconds)`` is called every 100 steps and at the end. Adam, learning rate
    ``config.lr`` decayed by a cosine to a tenth of it.
    """
    start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    images = [
        torch.from_numpy(resize_shorter(load_image(name), side)).permute(2, 0, 1).contiguous()
        for name in config.train_images
        for side in config.scales
    ]
    masks = _mask_pool(config, rng)
    model = InpaintingUNet(config.channels, config.kernel_sizes, partial=config.partial)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / config.steps))
    )
    model.train()
    recent: list[float] = []
    for step in range(1, config.steps + 1):
        image, mask = _batch(images, masks, config, generator)
        target = to_network(image)
        loss = inpainting_loss(model(target, mask), target, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        recent = (recent + [loss.item()])[-100:]
        if log is not None and (step % 100 == 0 or step == config.steps):
            log(step, sum(recent) / len(recent), time.perf_counter() - start)
    model.eval()
    summary = {
        "config": config.to_dict(),
        "final_loss": sum(recent) / len(recent),
        "seconds": round(time.perf_counter() - start, 1),
        "threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
    }
    return model, summary
