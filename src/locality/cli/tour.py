"""``locality tour``: the notes, computed, drawn and run, in under a minute.

Walks through the study notes this package came from: the four kinds of connection and their
pictures (note 000), every worked count (notes 001-003, with note 002's memory error fixed),
what a tiled convolution looks like, receptive fields, and the fully connected -> convolution
move of note 004 with its speedup.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import textwrap
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WIDTH = 80


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tour",
        help="a guided tour of the notes: tables, pictures and the FC -> conv speedup",
        description="Walk through the notes: compare the four kinds of connection, recompute "
        "every worked number, draw the pictures (PNG) and run note 004's fully connected -> "
        "convolution move. Takes under a minute on two CPU cores.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("locality-tour"),
        metavar="DIR",
        help="folder for the figures (default ./locality-tour)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the results as JSON instead of the tour's text"
    )
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class Check:
    """One number of the notes next to what locality computes for it."""

    note: str
    what: str
    says: str
    value: int | str
    agrees: bool

    def to_dict(self) -> dict:
        return {
            "note": self.note,
            "what": self.what,
            "note_says": self.says,
            "locality": self.value,
            "agrees": self.agrees,
        }


def note_checks() -> list[Check]:
    """Every worked number of the notes, recomputed with ``locality.analysis``."""
    from locality.analysis import conv_cost, dense_cost, format_bytes, locally_connected_cost
    from locality.analysis.compare import output_size_formula

    def conv(c: int, o: int, k: int) -> int:
        return conv_cost(c, o, k, (1, 1), bias=False).params

    fc_big = dense_cost(1000 * 1000, 10**6, bias=False)
    fc_003 = dense_cost(500 * 500, 10**5, bias=False).params
    local_003 = 10**5 * 10 * 10  # 10^5 units, each with its own 10x10 weights
    formula = output_size_formula(32, 5, 1, 0)
    keras_local = locally_connected_cost(3, 64, 3, (30, 30)).params
    keras_conv = conv_cost(3, 64, 3, (30, 30)).params
    fcn_map = output_size_formula(8, 4, 1, 0)
    rows: list[tuple[str, str, str, int | str, int | str]] = [
        ("001", "dense 4x4x50 -> 500", "400,000", dense_cost(800, 500, False).params, 400_000),
        ("001", "dense 500 -> 10", "5,000", dense_cost(500, 10, False).params, 5_000),
        ("001", "10 kernels of 10x10", "1,000", conv(1, 10, 10), 1_000),
        ("001", "output size, 32 in, k5 s1 p0", "28", formula, "28"),
        ("001", "conv 4 -> 2 channels, 2x2", "32", conv(4, 2, 2), 32),
        ("001", "1x1 conv, 6 -> 5 channels", "30", conv(6, 5, 1), 30),
        ("002", "dense 1000x1000 -> 10^6", "10^12", fc_big.params, 10**12),
        ("002", "  in float32", "约400MB", format_bytes(fc_big.weight_bytes()), "400 MB"),
        (
            "002",
            "local 10x10, stride 10",
            "10^8",
            locally_connected_cost(1, 100, 10, (100, 100), bias=False).params,
            10**8,
        ),
        ("003", "dense 500x500 -> 10^5", "2.5x10^10", fc_003, 25 * 10**9),
        ("003", "local 10x10, 10^5 units", "10^7", local_003, 10**7),
        ("003", "  local / dense", "1/2500", f"1/{fc_003 // local_003:,}", "1/2,500"),
        ("003", "shared 10x10", "100", conv(1, 1, 10), 100),
        ("003", "  64 kernels", "6400", conv(1, 64, 10), 6_400),
        ("003", "kernel 5x5x3x10", "-", conv(3, 10, 5), 750),
        ("003", "kernel 3x3x10x5", "-", conv(10, 5, 3), 450),
        (
            "004",
            "dense 48->10 = conv 4x4x3x10",
            "48x10",
            dense_cost(48, 10, False).params,
            conv(3, 10, 4),
        ),
        ("004", "score map, 64x64 input", "5x5x10", fcn_map, "5"),
        ("Keras", "LocallyConnected2D, 32x32x3", "1,612,800", keras_local, 1_612_800),
        ("Keras", "  Conv2D, same shapes", "1,792", keras_conv, 1_792),
    ]
    checks = []
    for note, what, says, value, expected in rows:
        agrees = str(value).endswith(str(expected)) if isinstance(value, str) else value == expected
        checks.append(Check(note, what, says, value, agrees))
    return checks


def _width(text: str) -> int:
    """Columns ``text`` takes on a terminal: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _rjust(text: str, width: int) -> str:
    return " " * (width - _width(text)) + text


def _check_table(checks: list[Check]) -> list[str]:
    header = ("note", "what", "note says", "locality", "")
    body = [
        (
            c.note,
            c.what,
            c.says,
            f"{c.value:,}" if isinstance(c.value, int) else c.value,
            "ok" if c.agrees else "WRONG",
        )
        for c in checks
    ]
    widths = [max(_width(r[i]) for r in (header, *body)) for i in range(4)]
    lines = []
    for row in (header, *body):
        cells = [
            row[0].ljust(widths[0]),
            row[1].ljust(widths[1]),
            _rjust(row[2], widths[2]),
            _rjust(row[3], widths[3]),
            row[4],
        ]
        lines.append(" ".join(cells).rstrip())
    lines.insert(1, "-" * max(_width(line) for line in lines))
    return lines


def _heading(number: int, title: str) -> list[str]:
    text = f"{number}. {title}"
    return ["", text, "=" * len(text)]


def _wrap(text: str) -> list[str]:
    """Paragraph to lines of at most WIDTH terminal columns (CJK characters take two)."""
    paragraph = " ".join(textwrap.dedent(text).split())
    lines = textwrap.wrap(paragraph, WIDTH)
    while any(_width(line) > WIDTH for line in lines):
        excess = max(_width(line) - WIDTH for line in lines)
        lines = textwrap.wrap(paragraph, len(max(lines, key=_width)) - excess)
    return lines


def _kernel_grid(index) -> list[str]:
    return ["  " + " ".join(f"{int(k):>2}" for k in row) for row in index]


class Tour:
    """Collects the tour's text and results as it runs; prints as it goes unless quiet."""

    def __init__(self, out: Path, quiet: bool, no_figures: str | None = None) -> None:
        self.out, self.quiet = out, quiet
        self.results: dict = {}
        self.files: list[Path] = []
        self.no_figures = no_figures  # why figures cannot be drawn, or None
        self.skipped: list[str] = []

    def say(self, lines: list[str] | str) -> None:
        if not self.quiet:
            print("\n".join([lines] if isinstance(lines, str) else lines), flush=True)

    def save(self, make_figure: Callable[[], Figure], stem: str) -> str:
        """Draw ``make_figure()`` to ``OUT/stem.png``; return what the text calls the picture.

        Without matplotlib the figure is skipped (and listed at the end) and the text goes on.
        """
        if self.no_figures is not None:
            self.skipped.append(f"{stem}.png")
            return f"{stem}.png (skipped: {self.no_figures})"
        from locality.draw import save_figure

        (path,) = save_figure(make_figure(), self.out / stem, ("png",))
        self.files.append(path)
        return str(path)

    def four_kinds(self) -> None:
        from locality.analysis.compare import compare

        self.say(_heading(1, "Four ways to connect two layers (note 000)"))
        self.say(
            _wrap("""
            Eight inputs, six outputs, each output reading three neighbouring inputs (a dense
            layer reads all eight). The work per output is the same for the three local
            kinds; what differs is how many distinct weights there are:""")
        )
        result = compare((8,), kernel_size=3, tile_size=2)
        self.say(["", *result.table(kinds=("dense", "locally_connected", "tiled", "conv"))])
        path = self.save(lambda: _draw().four_panel_figure(8, 3, 2), "four_panel")
        self.say(
            [
                "",
                *_wrap(f"""
            Picture: {path}, one colour per distinct weight. Convolution: the same three
            colours repeat. Tiled (t = 2): two sets alternate. Locally connected: every
            colour different. Dense: every input to every output."""),
            ]
        )
        self.results["four_kinds"] = result.to_dict()

    def notes(self) -> None:
        from locality.analysis.compare import compare

        self.say(_heading(2, "The notes' numbers, recomputed (notes 001-004)"))
        checks = note_checks()
        self.say(_check_table(checks))
        self.say(
            [
                "",
                *_wrap("""
            Note 002's 1000x1000 image with 10^6 hidden units, every kind (units on a
            100x100 grid of 10x10 patches at stride 10, so 100 maps; the lowrank and
            region rows are kinds between conv and locally_connected):"""),
            ]
        )
        example = compare((1000, 1000), units=10**6, kernel_size=10, stride=10)
        self.say(["", *str(example).splitlines()])
        self.say(
            [
                "",
                *_wrap("""
            Note 002 says "约400MB" for the dense layer in float32. It is 4 TB: 10^12
            weights x 4 bytes. 400 MB is what the locally connected layer needs."""),
            ]
        )
        self.results["note_checks"] = [c.to_dict() for c in checks]
        self.results["note_002"] = example.to_dict()

    def tiled(self) -> None:
        from torch import nn

        from locality import LocallyConnected2d, TiledConv2d

        self.say(_heading(3, "What does a tiled convolution look like? (note 000)"))
        self.say(
            _wrap("""
            A reader asked what 局部卷积 (tiled convolution) actually is. It is a
            convolution with a small bank of kernels that take turns: output position i
            uses kernel i mod t in each dimension. t = 1 is a convolution; t as large as the
            output is a locally connected layer. Kernel used at each of 6x6 outputs, t = 2:""")
        )
        index = tiled_kernel_index((6, 6), 2)
        self.say(["", *_kernel_grid(index)])
        layers = [
            nn.Conv2d(1, 1, 3),
            TiledConv2d(1, 1, 3, tile_size=3),
            LocallyConnected2d(1, 1, 3, input_size=10),
        ]
        path = self.save(lambda: _draw().tile_map_figure(layers, (10, 10)), "tile_map")
        self.say(
            [
                "",
                *_wrap(f"""
            Picture: {path}: the same map for a convolution (1 kernel), a tiled
            convolution with t = 3 (9 kernels) and a locally connected layer (64)."""),
            ]
        )
        self.results["tiled_kernel_map"] = index.tolist()

    def receptive_fields(self) -> None:
        from locality.analysis import summary
        from locality.cli.draw import demo_stack

        self.say(_heading(4, "Receptive fields, layer by layer"))
        self.say(
            _wrap("""
            Sharing weights changes what a unit computes, never where it looks: the
            receptive field grows the same way through all three local kinds.""")
            + [""]
        )
        model = demo_stack()
        table = summary(model, (1, 16, 16))
        self.say(str(table).splitlines())
        path = self.save(
            lambda: _draw().receptive_field_figure(model, (1, 16, 16)), "receptive_field"
        )
        self.say(["", f"Picture: {path}"])
        self.results["summary"] = table.to_dict()

    def fc_to_conv(self) -> None:
        self.say(_heading(5, "Fully connected -> convolution (note 004)"))
        result = fc_to_conv_demo()
        self.say(
            _wrap(f"""
            A classifier for 1x32x32 images: three 2x2 convolutions at stride 2 make a
            3x4x4 feature map, then Linear(48, 10). Linear(48, 10) is a 4x4x3x10
            convolution with the same {result["head_params"]} parameters, so the network
            runs on a 64x64 image and returns a 10x5x5 map of scores, one per 32x32 window
            at stride 8 (weights random: the equivalence does not need training).""")
            + [""]
        )
        rows = [
            ("25 windows, one batched call", result["windows_flops"], result["windows_ms"]),
            ("fully convolutional, one pass", result["fcn_flops"], result["fcn_ms"]),
        ]
        self.say(
            f"  {'batch of ' + str(result['batch']) + ' images 64x64':<31}"
            f"{'FLOPs':>16}{'time (ms)':>12}"
        )
        for label, flops, ms in rows:
            self.say(f"  {label:<31}{flops:>16,}{ms:>12.1f}")
        self.say(
            [
                "",
                f"  largest difference between the two score maps: {result['max_difference']:.1e}",
                f"  speedup: {result['speedup_time']:.1f}x in time, "
                f"{result['speedup_flops']:.2f}x in FLOPs "
                "(overlapping windows share their work)",
            ]
        )
        self.results["fc_to_conv"] = result


def _draw():
    """``locality.draw``, imported when a figure is drawn (it needs matplotlib)."""
    from locality import draw

    return draw


def tiled_kernel_index(output: tuple[int, int], tile: int):
    """The kernel a ``tile x tile`` tiled convolution uses at each output position, row-major:
    ``(i mod t) * t + (j mod t)`` (what ``locality.draw.kernel_map`` computes, without
    matplotlib)."""
    import torch

    rows, cols = (torch.arange(n) % tile for n in output)
    return rows[:, None] * tile + cols[None, :]


def fc_to_conv_demo(batch: int = 32, repeats: int = 5) -> dict:
    """Note 004 on a small classifier: 25 sliding windows vs one fully convolutional pass."""
    import torch
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    from locality.convert import fully_convolutional, sliding_window

    generator = torch.Generator().manual_seed(4)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 2, stride=2),
        nn.ReLU(),
        nn.Conv2d(32, 64, 2, stride=2),
        nn.ReLU(),
        nn.Conv2d(64, 3, 2, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(48, 10),
    ).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.rand(p.shape, generator=generator) - 0.5)
    fcn = fully_convolutional(model, (1, 32, 32)).eval()
    x = torch.randn(batch, 1, 64, 64, generator=generator)

    def windows() -> torch.Tensor:
        return sliding_window(model, x, 32, 8)

    def one_pass() -> torch.Tensor:
        return fcn(x)

    def measure(fn) -> tuple[torch.Tensor, int, float]:
        with torch.no_grad():
            with FlopCounterMode(display=False) as counter:
                out = fn()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
        return out, counter.get_total_flops(), 1000 * statistics.median(times)

    reference, windows_flops, windows_ms = measure(windows)
    scores, fcn_flops, fcn_ms = measure(one_pass)
    return {
        "batch": batch,
        "score_map_shape": list(scores.shape[1:]),
        "head_params": sum(p.numel() for p in model[-1].parameters()),
        "windows_flops": windows_flops,
        "fcn_flops": fcn_flops,
        "windows_ms": windows_ms,
        "fcn_ms": fcn_ms,
        "max_difference": float((scores - reference).abs().max()),
        "speedup_time": windows_ms / fcn_ms,
        "speedup_flops": windows_flops / fcn_flops,
    }


def run(args: argparse.Namespace) -> int:
    from locality.cli.paths import output_folder

    output_folder(args.out)
    no_figures = (
        None
        if importlib.util.find_spec("matplotlib") is not None
        else "matplotlib is not installed; pip install 'locality[plot]' for the figures"
    )
    start = time.perf_counter()
    tour = Tour(args.out, quiet=args.json, no_figures=no_figures)
    tour.say(
        [
            "locality tour: dense, locally connected, tiled and convolutional layers",
            "Every number below is computed by locality; figures go to " + str(args.out),
        ]
    )
    tour.four_kinds()
    tour.notes()
    tour.tiled()
    tour.receptive_fields()
    tour.fc_to_conv()
    seconds = time.perf_counter() - start
    tour.say(_heading(6, "Files"))
    tour.say([f"  {path}" for path in tour.files])
    if tour.skipped:
        tour.say(_wrap(f"Figures skipped ({tour.no_figures}): {', '.join(tour.skipped)}."))
    tour.say(
        [
            "",
            f"Done in {seconds:.1f} s. Next: locality compare --help, locality summary --help,",
            "locality draw --help.",
        ]
    )
    if args.json:
        tour.results["files"] = [str(p) for p in tour.files]
        tour.results["skipped_figures"] = {"files": tour.skipped, "reason": tour.no_figures}
        tour.results["seconds"] = seconds
        print(json.dumps(tour.results, indent=2, ensure_ascii=False))
    return 0
