"""Locally connected and tiled layers beside unfold+einsum, F.conv and the batched-matmul floor.

    python benchmarks/connectivity.py [--device cpu|cuda] [--quick] [--repeats R] [--threads T]

One table. Per shape, rows: locality's op (the path dispatch picks, named in the last column), the
ATen reference path it replaced, the community unfold+einsum recipe (written here), F.conv*d with
one shared kernel of the same shape, and the floor: the bare batched matmul on patches already laid
out as (P, C*K, N) (forward: one bmm; forward+backward: the three bmm of forward, weight gradient
and patch gradient; step: those plus Adam on a weight-sized tensor). Tiled shapes list the exact
formulations instead of the recipe and the floor: the two dispatch chooses between
(locality.kernels.tiled) and, on the 2-D shapes up to t=4, the two it never chose
(benchmarks/tiled_formulations.py). After the table, every target of the issue as a ratio measured
in this run, met or not.

Times: median of R repeats after 2 warm-ups, in ms, the calls of one shape (every method's
forward, forward+backward and step) taking turns within each repeat; forward under no_grad;
forward+backward with the input and parameters requiring grad, backward from a fixed gradient;
step = forward, backward, Adam update through an nn.Module. Where one weight copy is under
16 MiB, repeats rotate through copies so each starts with a cold cache.

Peak memory (column "peak MB", one forward+backward after a warm-up one, above the inputs and
weights): on CUDA torch.cuda.max_memory_allocated minus what was allocated before. On CPU a
resource-based measure: the growth of the process's resident high-water mark (Linux VmHWM, reset
through /proc/self/clear_refs) over its resident size before the call, measured in a child process
run with MALLOC_MMAP_THRESHOLD_=65536 so that glibc maps every block above 64 KiB fresh and unmaps
it when freed: resident memory then follows live tensors (to within small blocks). The timings run
without it (fresh mappings page-fault on every large allocation).
"extra/patch" is (peak - output, its gradient and the parameter and input gradients) divided by the
bytes of one k^d-sized patch copy: the issue's target is <= 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import tiled_formulations
import torch
import torch.nn.functional as F

from locality.functional import locally_connected, tiled_conv
from locality.kernels import dispatch, reference, tiled

MMAP_THRESHOLD = "65536"


@dataclass(frozen=True)
class Case:
    """One layer: N x C x size -> N x O x out, kernel k, stride s, tile t (tiled only)."""

    name: str
    kind: str  # "local" or "tiled"
    n: int
    c: int
    o: int
    size: tuple[int, ...]
    k: int
    stride: int = 1
    padding: int = 0
    tile: int = 1

    @property
    def d(self) -> int:
        return len(self.size)

    @property
    def out(self) -> tuple[int, ...]:
        return tuple((s + 2 * self.padding - self.k) // self.stride + 1 for s in self.size)


def cases(quick: bool, only: str | None = None) -> list[Case]:
    """The issue's shapes, or tiny ones with --quick; ``only``: comma list of name parts."""
    every = all_cases(quick)
    if only is None:
        return every
    return [c for c in every if any(part in c.name for part in only.split(","))]


def all_cases(quick: bool) -> list[Case]:
    """The issue's shapes (DeepFace L4-L6 at batch 8 on CPU), or tiny ones with --quick."""
    if quick:
        return [
            Case("L4-like", "local", 2, 3, 4, (12, 12), 3),
            Case("L5-like", "local", 2, 3, 4, (11, 11), 3, stride=2),
            Case("1-D", "local", 2, 3, 4, (20,), 5),
            Case("blocks", "local", 2, 3, 4, (8, 8), 2, stride=2),
            Case("tiled t=2", "tiled", 2, 3, 4, (8, 8), 3, padding=1, tile=2),
            Case("tiled t=4", "tiled", 2, 3, 4, (8, 8), 3, padding=1, tile=4),
            Case("tiled 3-D t=2", "tiled", 2, 3, 4, (6, 6, 6), 3, padding=1, tile=2),
        ]
    return [
        Case("DeepFace L4", "local", 8, 16, 16, (63, 63), 9),
        Case("DeepFace L5", "local", 8, 16, 16, (55, 55), 7, stride=2),
        Case("DeepFace L6", "local", 8, 16, 16, (25, 25), 5),
        Case("small image", "local", 32, 16, 16, (32, 32), 3),
        Case("1-D", "local", 64, 32, 32, (256,), 5),
        Case("blocks k=s=2", "local", 32, 16, 16, (32, 32), 2, stride=2),
        Case("1x1", "local", 32, 64, 64, (16, 16), 1),
        Case("CIFAR tiled t=2", "tiled", 32, 64, 64, (32, 32), 3, padding=1, tile=2),
        Case("CIFAR tiled t=4", "tiled", 32, 64, 64, (32, 32), 3, padding=1, tile=4),
        Case("CIFAR tiled t=8", "tiled", 32, 64, 64, (32, 32), 3, padding=1, tile=8),
        Case("1-D tiled t=2", "tiled", 64, 32, 32, (256,), 5, padding=2, tile=2),
        Case("1-D tiled t=8", "tiled", 64, 32, 32, (256,), 5, padding=2, tile=8),
        Case("3-D tiled t=2", "tiled", 8, 16, 16, (16, 16, 16), 3, padding=1, tile=2),
        Case("3-D tiled t=4", "tiled", 8, 16, 16, (16, 16, 16), 3, padding=1, tile=4),
    ]


# ------------------------------------------------------------------------------------------------
# What is measured: each method maps (x, weight, bias) to an output.

Method = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def unfold_einsum(case: Case) -> Method:
    """The community recipe: F.unfold to (N, C*K, P), einsum with (P, O, C*K), add the bias."""
    k = (1, case.k) if case.d == 1 else (case.k,) * 2
    s = (1, case.stride) if case.d == 1 else (case.stride,) * 2

    def run(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x4 = x.unsqueeze(2) if case.d == 1 else x
        cols = F.unfold(x4, k, stride=s)  # (N, C*K, P)
        kernels = w.reshape(math.prod(case.out), case.o, -1)
        y = torch.einsum("nkp,pok->nop", cols, kernels) + b.reshape(-1, case.o).t()
        return y.reshape(x.shape[0], case.o, *case.out)

    return run


def methods(case: Case) -> dict[str, Method]:
    """Name -> method. The weight is the layer's own (positions or tile offsets first)."""
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[case.d]
    grid = case.d
    shared = lambda w: w[(0,) * grid]  # noqa: E731 - one kernel of the bank, as a conv weight
    if case.kind == "local":
        return {
            "locality": lambda x, w, b: locally_connected(x, w, b, case.stride),
            "aten reference": lambda x, w, b: reference.locally_connected(
                x, w, b, (case.stride,) * grid, (1,) * grid, 1
            ),
            "unfold+einsum": unfold_einsum(case),
            "F.conv": lambda x, w, b: conv(x, shared(w), b[(0,) * grid], case.stride),
        }
    pad = lambda x: F.pad(x, [case.padding] * 2 * grid)  # noqa: E731

    def formulation(f: tiled.Formulation) -> Method:
        return lambda x, w, b: f(pad(x), w, b, (case.stride,) * grid, (1,) * grid, 1, case.out)

    # The never-dispatched formulations are slow at large tiles (embedded: 11x the FLOPs at t=8).
    others = tiled_formulations.FORMULATIONS if case.d == 2 and case.tile <= 4 else {}
    return {
        "locality": lambda x, w, b: tiled_conv(x, w, b, case.stride, case.padding),
        **{name: formulation(f) for name, f in {**tiled.FORMULATIONS, **others}.items()},
        "F.conv": lambda x, w, b: conv(x, shared(w), b[(0,) * grid], case.stride, case.padding),
    }


def tensors(case: Case, device: str, copies: int = 1, grad: bool = False):
    """Input and ``copies`` (weight, bias) pairs of the layer's shapes."""
    grid = case.out if case.kind == "local" else (case.tile,) * case.d
    x = torch.randn(case.n, case.c, *case.size, device=device, requires_grad=grad)
    params = []
    for _ in range(copies):
        w = torch.randn(*grid, case.o, case.c, *(case.k,) * case.d, device=device) / case.k
        b = torch.randn(*grid, case.o, device=device)
        params.append((w.requires_grad_(grad), b.requires_grad_(grad)))
    return x, params


# ------------------------------------------------------------------------------------------------
# Timing.


#: A timed call; the argument is the repeat's index (to rotate through weight copies).
Call = Callable[[int], object]


def interleaved_ms(calls: dict[str, Call], repeats: int, device: str) -> dict[str, float]:
    """Median wall time (ms) of each call over ``repeats``, after two warm-ups of each.

    The calls take turns within every repeat, so a slow spell of this shared machine falls on all
    of them alike and the ratios between them (what the targets are) hold even when the absolute
    times drift: run one after another, the same F.conv2d measured 22 ms and 37 ms.
    """
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for call in calls.values():
        for i in range(2):
            call(i)
    sync()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call(i)
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def copies_for(case: Case) -> int:
    """Weight copies to rotate through: enough to exceed 16 MiB when one copy is smaller."""
    grid = math.prod(case.out) if case.kind == "local" else case.tile**case.d
    weight_bytes = 4 * grid * case.o * case.c * case.k**case.d
    return max(1, min(4, (16 << 20) // weight_bytes))


def method_calls(case: Case, method: Method, device: str) -> tuple[Call, Call]:
    """(forward, forward+backward) of one method on fresh tensors."""
    copies = copies_for(case)
    x, params = tensors(case, device, copies, grad=True)
    gout = torch.randn(case.n, case.o, *case.out, device=device)

    def forward(i: int) -> None:
        with torch.no_grad():
            method(x, *params[i % copies])

    def forward_backward(i: int) -> None:
        w, b = params[i % copies]
        x.grad = w.grad = b.grad = None
        method(x, w, b).backward(gout)

    return forward, forward_backward


def step_call(case: Case, method: Method, device: str) -> Call:
    """One training step through an nn.Module: forward, backward, Adam."""
    x, ((w, b),) = tensors(case, device)
    module = torch.nn.Module()
    module.weight, module.bias = torch.nn.Parameter(w), torch.nn.Parameter(b)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
    gout = torch.randn(case.n, case.o, *case.out, device=device)

    def step(i: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        method(x, module.weight, module.bias).backward(gout)
        optimizer.step()

    return step


def floor_calls(case: Case, device: str) -> tuple[Call, Call, Call]:
    """The bare batched matmul on (P, C*K, N) patches: forward, forward+backward, step."""
    p, ck = math.prod(case.out), case.c * case.k**case.d
    copies = copies_for(case)
    patches = torch.randn(p, ck, case.n, device=device)
    weights = [torch.randn(p, case.o, ck, device=device) for _ in range(copies)]
    gout = torch.randn(p, case.o, case.n, device=device)

    def forward(i: int) -> None:
        torch.bmm(weights[i % copies], patches)

    def forward_backward(i: int) -> None:
        w = weights[i % copies]
        torch.bmm(w, patches)
        torch.bmm(gout, patches.transpose(1, 2))
        torch.bmm(w.transpose(1, 2), gout)

    param = torch.nn.Parameter(weights[0].clone())
    optimizer = torch.optim.Adam([param], lr=1e-4)

    def step(i: int) -> None:
        forward_backward(0)
        param.grad = weights[i % copies]
        optimizer.step()

    return forward, forward_backward, step


# ------------------------------------------------------------------------------------------------
# Peak memory.


def _kib(field: str) -> int:
    """A field of /proc/self/status, in KiB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))


def peak_bytes(case: Case, method: Method, device: str) -> int:
    """Peak bytes above inputs and weights over one forward+backward (see the module doc).

    One warm-up forward+backward first, so that first-call initialisation is not counted; its
    memory is freed (and, with the mmap threshold, unmapped) before the measured run.
    """
    x, ((w, b),) = tensors(case, device, grad=True)
    gout = torch.randn(case.n, case.o, *case.out, device=device)
    method(x, w, b).backward(gout)
    x.grad = w.grad = b.grad = None
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        method(x, w, b).backward(gout)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset the resident high-water mark (VmHWM) to the current size
    before = _kib("VmRSS")
    method(x, w, b).backward(gout)
    return 1024 * (_kib("VmHWM") - before)


def accounted_bytes(case: Case) -> tuple[int, int]:
    """(output + all gradients, one patch copy) in bytes, float32."""
    grid = math.prod(case.out) if case.kind == "local" else case.tile**case.d
    out = case.n * case.o * math.prod(case.out)
    grads = (
        out + case.n * case.c * math.prod(case.size) + grid * case.o * (case.c * case.k**case.d + 1)
    )
    patch = case.n * case.c * case.k**case.d * math.prod(case.out)
    return 4 * (out + grads), 4 * patch


# ------------------------------------------------------------------------------------------------


def algorithm(case: Case, name: str, device: str) -> str:
    """The path dispatch takes (locality rows), or the FLOP overhead of ``embedded``."""
    if name == "embedded":
        ratio = tiled_formulations.embedded_flop_ratio(
            (case.tile,) * case.d, (case.k,) * case.d, (case.stride,) * case.d, (1,) * case.d
        )
        return f"{ratio:.2f}x the FLOPs"
    if name != "locality":
        return ""
    x, ((w, b),) = tensors(case, device)
    if case.kind == "local":
        return dispatch.locally_connected_path(x, w, b)
    return dispatch.tiled_path(x, w, b, case.out)


def peaks(device: str, quick: bool, only: str | None) -> dict[str, int]:
    """Peak bytes per "shape/method" (see peak_bytes); run on CPU in its own process."""
    return {
        f"{case.name}/{name}": peak_bytes(case, method, device)
        for case in cases(quick, only)
        for name, method in methods(case).items()
    }


def measured_peaks(
    device: str, quick: bool, threads: int | None, only: str | None
) -> dict[str, int]:
    """On CPU, peaks() in a child with MALLOC_MMAP_THRESHOLD_ set: it would slow the timings."""
    if device == "cuda":
        return peaks(device, quick, only)
    command = [sys.executable, os.path.abspath(__file__), "--memory-only"]
    command += ["--quick"] * quick + (["--threads", str(threads)] if threads else [])
    command += ["--cases", only] if only else []
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


#: Methods whose training step (forward, backward, Adam through an nn.Module) is timed too.
STEPPED = ("locality", "unfold+einsum", "F.conv")


def run(
    device: str, quick: bool, repeats: int, peak: dict[str, int], only: str | None = None
) -> list[dict]:
    """Time every method on every shape; ``peak`` holds the memory column (may be empty)."""
    rows = []
    for case in cases(quick, only):
        accounted, patch = accounted_bytes(case)
        timed = methods(case)
        names = list(timed) + ["bmm floor"] * (case.kind == "local")
        calls: dict[str, Call] = {}
        for name, method in timed.items():
            calls[f"{name}/fwd"], calls[f"{name}/fb"] = method_calls(case, method, device)
            if name in STEPPED:
                calls[f"{name}/step"] = step_call(case, method, device)
        if case.kind == "local":
            floor = floor_calls(case, device)
            calls["bmm floor/fwd"], calls["bmm floor/fb"], calls["bmm floor/step"] = floor
        ms = interleaved_ms(calls, repeats, device)
        for name in names:
            row = {
                "case": case.name,
                "method": name,
                "fwd": ms[f"{name}/fwd"],
                "fb": ms[f"{name}/fb"],
                "step": ms.get(f"{name}/step", math.nan),
                "peak": peak.get(f"{case.name}/{name}", math.nan),
                "algorithm": "" if name == "bmm floor" else algorithm(case, name, device),
            }
            row["extra/patch"] = (row["peak"] - accounted) / patch
            rows.append(row)
        print(f"  {case.name} done", file=sys.stderr, flush=True)
        if case.kind == "local":
            baseline = next(
                r for r in rows if r["case"] == case.name and r["method"] == "unfold+einsum"
            )
        else:
            baseline = next(r for r in rows if r["case"] == case.name and r["method"] == "F.conv")
        for row in rows:
            if row["case"] == case.name:
                row["vs"] = baseline["method"]
                row["fwd x"] = baseline["fwd"] / row["fwd"]
                row["fb x"] = baseline["fb"] / row["fb"]
    return rows


def table(rows: list[dict]) -> str:
    """Markdown table; 'fwd x'/'f+b x' are speedups over the row named in 'vs'."""
    head = (
        "| shape | method | fwd ms | fwd+bwd ms | step ms | peak MB | extra/patch | fwd x | "
        "f+b x | vs | algorithm |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:

        def f(v: float, spec: str) -> str:
            return "" if math.isnan(v) else format(v, spec)

        lines.append(
            f"| {r['case']} | {r['method']} | {f(r['fwd'], '.2f')} | {f(r['fb'], '.2f')} | "
            f"{f(r['step'], '.2f')} | {f(r['peak'] / 2**20, '.1f')} | "
            f"{f(r['extra/patch'], '.2f')} | "
            f"{f(r['fwd x'], '.1f')} | {f(r['fb x'], '.1f')} | {r['vs']} | {r['algorithm']} |"
        )
    return "\n".join(lines)


#: The issue's tiled targets: forward+backward over F.conv on the CIFAR shape, per tile.
TILED_TARGETS = {"CIFAR tiled t=2": 1.8, "CIFAR tiled t=4": 2.5, "CIFAR tiled t=8": 2.5}

#: Locally connected: forward and forward+backward within this factor of the bmm floor.
FLOOR_FACTOR = 2.0


def targets(rows: list[dict]) -> str:
    """Each target of the issue as a ratio measured in this run, and whether it is met."""
    by = {(r["case"], r["method"]): r for r in rows}
    lines = ["| target | measured | met |", "|---|---|---|"]
    for case, bound in TILED_TARGETS.items():
        if (case, "locality") in by:
            ratio = by[case, "locality"]["fb"] / by[case, "F.conv"]["fb"]
            lines.append(
                f"| {case}: fwd+bwd / F.conv <= {bound} | {ratio:.2f} | "
                f"{'yes' if ratio <= bound else 'no'} |"
            )
    for (case, method), row in by.items():
        if method != "bmm floor":
            continue
        for key, label in (("fwd", "fwd"), ("fb", "fwd+bwd")):
            ratio = by[case, "locality"][key] / row[key]
            lines.append(
                f"| {case}: {label} / bmm floor <= {FLOOR_FACTOR:g} | {ratio:.2f} | "
                f"{'yes' if ratio <= FLOOR_FACTOR else 'no'} |"
            )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Between convolution and locally connected (issue 15): region-shared, mapped, low-rank and
# transposed locally connected layers beside F.conv2d and the locally connected op, one shape.


def between_methods(quick: bool) -> tuple[tuple[int, ...], dict[str, tuple[Callable, tuple]]]:
    """Input shape and name -> (op, parameters) for the issue's targets, on one CIFAR-like shape
    (N x 32 x 32 x 32 -> 32 channels, 3x3, padding 1); tiny with --quick."""
    from locality.functional import (
        locally_connected_transpose,
        lowrank_locally_connected,
        region_conv,
    )
    from locality.kernels import mapped

    n, c, size = (2, 4, 8) if quick else (32, 32, 32)
    k, grid = 3, (size, size)
    w = lambda *bank: torch.randn(*bank, c, c, k, k) / (3 * k)  # noqa: E731
    b = lambda *bank: torch.randn(*bank, c)  # noqa: E731
    kernel_map = torch.randint(0, 4, grid)
    pad = lambda x: F.pad(x, [1, 1, 1, 1])  # noqa: E731

    def formulation(name: str) -> Callable:
        f = mapped.FORMULATIONS[name]
        return lambda x, w_, b_: f(pad(x), w_, kernel_map, b_, (1, 1), (1, 1), 1)

    methods: dict[str, tuple[Callable, tuple]] = {
        "F.conv2d": (lambda x, w_, b_: F.conv2d(x, w_, b_, padding=1), (w(), b())),
        "region 2x2": (lambda x, w_, b_: region_conv(x, w_, b_, padding=1), (w(2, 2), b(2, 2))),
        "locally connected": (
            lambda x, w_, b_: locally_connected(x, w_, b_, padding=1),
            (w(*grid), b(*grid)),
        ),
        "transposed LC": (
            lambda y, w_, b_: locally_connected_transpose(y, w_, b_, padding=1),
            (w(*grid), b(*grid)),
        ),
    }
    for rank in (1, 2, 4, 8):
        methods[f"low-rank K={rank}"] = (
            lambda x, w_, m, b_: lowrank_locally_connected(x, w_, m, b_, padding=1),
            (w(rank), torch.randn(*grid, rank).softmax(-1), b(*grid)),
        )
    for name in mapped.FORMULATIONS:
        methods[f"mapped K=4 {name}"] = (formulation(name), (w(4), b(4)))
    return (n, c, *grid), methods


def between_rows(quick: bool, repeats: int, device: str) -> list[dict]:
    """Forward and forward+backward ms per method, and ratios to F.conv2d and to the locally
    connected op, all in this one run."""
    shape, methods = between_methods(quick)
    out_grad = torch.randn(*shape, device=device)
    calls: dict[str, Call] = {}
    for name, (op, params) in methods.items():
        x = torch.randn(*shape, device=device, requires_grad=True)
        tensors = [p.to(device).requires_grad_() for p in params]

        def forward(_: int, op=op, tensors=tensors, x=x) -> None:
            with torch.no_grad():
                op(x, *tensors)

        def forward_backward(_: int, op=op, tensors=tensors, x=x) -> None:
            for t in (x, *tensors):
                t.grad = None
            op(x, *tensors).backward(out_grad)

        calls[f"{name}/fwd"], calls[f"{name}/fb"] = forward, forward_backward
    ms = interleaved_ms(calls, repeats, device)
    rows = [{"method": name, "fwd": ms[f"{name}/fwd"], "fb": ms[f"{name}/fb"]} for name in methods]
    conv = next(r for r in rows if r["method"] == "F.conv2d")
    local = next(r for r in rows if r["method"] == "locally connected")
    for r in rows:
        r["fb/conv"] = r["fb"] / conv["fb"]
        r["fb/local"] = r["fb"] / local["fb"]
    return rows


BETWEEN_TARGETS = {
    "region 2x2": "f+b <= 1.5x F.conv2d",
    "transposed LC": "f+b <= 1.5x locally connected",
    **{
        f"low-rank K={k}": f"f+b <= {1.5 * k:g}x F.conv2d, < locally connected"
        for k in (1, 2, 4, 8)
    },
}


def between_table(rows: list[dict]) -> str:
    head = "| method | fwd ms | fwd+bwd ms | f+b / F.conv2d | f+b / locally connected | target |"
    lines = [head, "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['fwd']:.2f} | {r['fb']:.2f} | {r['fb/conv']:.2f} | "
            f"{r['fb/local']:.2f} | {BETWEEN_TARGETS.get(r['method'], '')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--quick", action="store_true", help="tiny shapes, few repeats (smoke test)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed repeats (default 10, quick 2)"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory column")
    parser.add_argument(
        "--cases", default=None, help="only shapes whose name contains one of these (comma list)"
    )
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_only:
        print(json.dumps(peaks(args.device, args.quick, args.cases)))
        return
    peak = (
        {} if args.no_memory else measured_peaks(args.device, args.quick, args.threads, args.cases)
    )
    repeats = args.repeats or (2 if args.quick else 10)
    torch.manual_seed(0)
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"{os.cpu_count()}-core CPU"
    print(
        f"torch {torch.__version__}, {name}, {torch.get_num_threads()} threads, "
        f"median of {repeats} after 2 warm-ups"
    )
    rows = run(args.device, args.quick, repeats, peak, args.cases)
    print(table(rows))
    print()
    print(targets(rows))
    print()
    print(between_table(between_rows(args.quick, repeats, args.device)))


if __name__ == "__main__":
    main()
