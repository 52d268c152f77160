"""Saving and loading inpainting U-Nets; the shipped checkpoint is package data beside this file."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from locality.inpaint.files import write_atomically
from locality.inpaint.unet import InpaintingUNet

__all__ = ["SHIPPED_CHECKPOINT", "save_checkpoint", "load_checkpoint"]

#: The partial-convolution U-Net trained by ``locality inpaint --train`` with default settings.
SHIPPED_CHECKPOINT = Path(__file__).with_name("partial_unet.pt")

_FORMAT = "locality.inpaint/1"


def save_checkpoint(model: InpaintingUNet, summary: dict, path: str | os.PathLike) -> None:
    """Write ``model``'s weights and the training summary to ``path`` (via a temporary file)."""
    path = Path(path)
    payload = {
        "format": _FORMAT,
        "architecture": {
            "channels": list(model.channels),
            "kernel_sizes": list(model.kernel_sizes),
            "partial": model.partial,
            "image_channels": model.image_channels,
        },
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "training": summary,
    }
    write_atomically(path, lambda temporary: torch.save(payload, temporary))


def load_checkpoint(path: str | os.PathLike = SHIPPED_CHECKPOINT) -> tuple[InpaintingUNet, dict]:
    """The model (eval mode) and training summary stored at ``path``; ValueError if not one."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"load_checkpoint: cannot read {str(path)!r}: {reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"load_checkpoint: {str(path)!r} is not a locality inpainting checkpoint")
    architecture = payload["architecture"]
    model = InpaintingUNet(
        tuple(architecture["channels"]),
        tuple(architecture["kernel_sizes"]),
        partial=architecture["partial"],
        image_channels=architecture["image_channels"],
    )
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload["training"]
