"""One fully convolutional pass against batched sliding windows; FLOP ratio beside time ratio.

    python benchmarks/fully_convolutional.py [--device cuda] [--min-run-time 1.0]

Two classifiers: note 004's example (trained on 32x32, feature map 4x4x3, FC 48->10, total
stride 8) run on 64x64 images, 25 windows each; and a VGG-11-style network (channels divided by
``--width-divisor``) trained at 224 and run at 384, 36 windows at stride 32. FLOPs are counted by
``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products); times by
``torch.utils.benchmark.Timer``.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils import benchmark
from torch.utils.flop_counter import FlopCounterMode

from locality.convert import fully_convolutional, sliding_window


def note_004_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 32, 2, stride=2),
        nn.ReLU(),
        nn.Conv2d(32, 32, 2, stride=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 3, 1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(48, 10),
    )


class VGG11Style(nn.Module):
    """torchvision's VGG-11 layout (features / avgpool / flatten / classifier), narrower."""

    def __init__(self, divisor: int, classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
            if width == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [
                    nn.Conv2d(channels, width // divisor, 3, padding=1),
                    nn.ReLU(inplace=True),
                ]
                channels = width // divisor
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        hidden = 4096 // divisor
        self.classifier = nn.Sequential(
            nn.Linear(channels * 49, hidden),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(hidden, hidden),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(hidden, classes),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def seconds(fn, min_run_time: float) -> float:
    return (
        benchmark.Timer("fn()", globals={"fn": fn})
        .blocked_autorange(min_run_time=min_run_time)
        .median
    )


def row(name, model, train_shape, x, args) -> str:
    model = model.to(args.device).eval()
    x = x.to(args.device)
    fcn = fully_convolutional(model, train_shape)
    stride = fcn.geometry.stride
    window = train_shape[1:]
    with torch.inference_mode():
        dense, slid = fcn(x), sliding_window(model, x, window, stride)
        diff = (
            f"{(dense - slid).abs().max().item():.1e}"
            if fcn.geometry.offset == (0, 0)
            else "padded"
        )
        run_fcn = lambda: fcn(x)  # noqa: E731
        run_windows = lambda: sliding_window(model, x, window, stride)  # noqa: E731
        flop_ratio = flops(run_windows) / flops(run_fcn)
        t_fcn, t_windows = (
            seconds(run_fcn, args.min_run_time),
            seconds(run_windows, args.min_run_time),
        )
    windows = slid.shape[2:].numel()
    measured = t_windows / t_fcn
    return (
        f"{name:<22} {tuple(x.shape)!s:<18} {windows:>7} {t_fcn * 1e3:>9.2f} "
        f"{t_windows * 1e3:>11.2f} "
        f"{measured:>9.1f}x {flop_ratio:>9.1f}x {measured / flop_ratio:>11.2f} {diff:>8}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--min-run-time", type=float, default=1.0, help="seconds per timing")
    parser.add_argument("--width-divisor", type=int, default=4, help="VGG channels divided by this")
    parser.add_argument("--batch", type=int, default=16, help="images for the note-004 example")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print(f"device: {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(
        f"{'model':<22} {'input':<18} {'windows':>7} {'FCN ms':>9} {'windows ms':>11} "
        f"{'measured':>10} {'FLOPs':>10} {'meas/FLOPs':>11} {'max|diff|':>8}"
    )
    print(
        row(
            "note 004 (32 -> 64)",
            note_004_net(),
            (1, 32, 32),
            torch.randn(args.batch, 1, 64, 64),
            args,
        )
    )
    vgg = VGG11Style(args.width_divisor)
    print(
        row(
            f"VGG-11/{args.width_divisor} (224 -> 384)",
            vgg,
            (3, 224, 224),
            torch.randn(1, 3, 384, 384),
            args,
        )
    )


if __name__ == "__main__":
    main()
