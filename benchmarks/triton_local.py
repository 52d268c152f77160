"""Triton locally connected kernels on DeepFace L4 against the recipe, F.conv2d and the floor.

    PYTHONPATH=src python benchmarks/triton_local.py [--shape L4|tiny] [--dtypes bf16 fp32]
                                                     [--repeats R] [--device cuda|cpu]

First checks the kernels against ``reference.locally_connected`` (forward and both gradients) on
small cases with stride, dilation, groups and both bias layouts, then prints one table per dtype.
Rows: locality's Triton op (``triton_local.locally_connected``), the community unfold+einsum recipe
(written here), ``F.conv2d`` with one shared kernel of the same shape, and the floor.

Floor = max(FLOPs / peak, bytes / bandwidth), both ceilings measured here on the device: peak is
the median rate of a square ``torch.mm`` in the dtype (float32 without TF32 unless allowed), the
bandwidth that of a large device-to-device copy (bytes read + written). Forward: 2*N*|W| FLOPs and
the bytes of x, W and the output; forward+backward: three such products, and W read twice and its
gradient written once, x and its gradient, the output and its gradient.

Times are per call, in microseconds, medians of R repeats of 5 back-to-back calls after warm-up,
by CUDA events (perf_counter on CPU).
Forward runs under no_grad; forward+backward backpropagates a fixed gradient to x and W. ``--shape
tiny --device cpu`` with ``TRITON_INTERPRET=1`` only smoke-tests this script.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import triton

from locality.kernels import reference, triton_local

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


@dataclass(frozen=True)
class Shape:
    """N x C x (size, size) -> N x O x (out, out), kernel k x k, stride 1, no padding."""

    n: int
    c: int
    o: int
    size: int
    k: int

    @property
    def out(self) -> int:
        return self.size - self.k + 1


SHAPES = {"L4": Shape(32, 16, 16, 63, 9), "tiny": Shape(2, 3, 4, 6, 3)}


def timer(device: torch.device, fn: Callable[[], object], repeats: int, inner: int = 5) -> float:
    """Seconds per call of ``fn``: median over ``repeats`` of ``inner`` back-to-back calls (so the
    host's launch overhead overlaps the device's work, as in a model), after 3 warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3 / inner)
        else:
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def peak_matmul(device: torch.device, dtype: torch.dtype, repeats: int) -> float:
    """FLOP/s of a square torch.mm in ``dtype`` (8192 on CUDA, 512 elsewhere)."""
    m = 8192 if device.type == "cuda" else 512
    a = torch.randn(m, m, device=device, dtype=dtype)
    b = torch.randn(m, m, device=device, dtype=dtype)
    return 2 * m**3 / timer(device, lambda: torch.mm(a, b), repeats)


def bandwidth(device: torch.device, repeats: int) -> float:
    """Bytes/s of a device-to-device copy of 1 GiB on CUDA (64 MiB elsewhere), read + written."""
    nbytes = (1 << 30) if device.type == "cuda" else (64 << 20)
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    return 2 * nbytes / timer(device, lambda: dst.copy_(src), repeats)


def unfold_einsum(x: torch.Tensor, weight: torch.Tensor, k: int) -> torch.Tensor:
    """Community recipe: (N, C, H, W) x (OH, OW, O, C, k, k) -> (N, O, OH, OW), stride 1."""
    oh, ow, o = weight.shape[:3]
    patches = F.unfold(x, k)  # (N, C*k*k, P)
    out = torch.einsum("nkp,pok->nop", patches, weight.reshape(oh * ow, o, -1))
    return out.reshape(x.shape[0], o, oh, ow)


def check(device: torch.device, dtypes: list[torch.dtype]) -> None:
    """Forward and both gradients of the kernels against the float32 reference, per dtype."""
    cases = [  # N, C, O, size, k, stride, dilation, groups, bias shape
        (8, 16, 16, (20, 20), (9, 9), (1, 1), (1, 1), 1, "local"),
        (5, 6, 10, (13, 11), (3, 2), (2, 1), (1, 2), 2, "shared"),
        (3, 4, 8, (17,), (5,), (2,), (1,), 4, None),
        (2, 4, 6, (6, 7, 8), (2, 3, 3), (1, 1, 2), (2, 1, 1), 2, "local"),
    ]
    gen = torch.Generator(device=device).manual_seed(0)
    for dtype in dtypes:
        tol = 1e-4 if dtype == torch.float32 else 2e-2
        worst = 0.0
        for n, c, o, size, k, s, dl, g, bias_kind in cases:
            geometry = zip(size, k, s, dl, strict=True)
            out = [(z - d * (kk - 1) - 1) // ss + 1 for z, kk, ss, d in geometry]
            x = torch.randn(n, c, *size, device=device, generator=gen).to(dtype)
            w = torch.randn(*out, o, c // g, *k, device=device, generator=gen).to(dtype)
            w /= math.sqrt(w[0].numel() / o)
            bias = {None: None, "shared": (o,), "local": (*out, o)}[bias_kind]
            b = None if bias is None else torch.randn(bias, device=device, generator=gen).to(dtype)
            gy = torch.randn(n, o, *out, device=device, generator=gen)
            results = []
            for fn, cast in (
                (triton_local.locally_connected, dtype),
                (reference.locally_connected, torch.float32),
            ):
                leaves = [t.to(cast).requires_grad_() for t in (x, w, b) if t is not None]
                y = fn(leaves[0], leaves[1], None if b is None else leaves[2], s, dl, g)
                results.append([y, *torch.autograd.grad(y, leaves, gy.to(cast))])
            for got, want in zip(*results, strict=True):
                err = (got.float() - want).abs().max().item() / max(1.0, want.abs().max().item())
                worst = max(worst, err)
        status = "ok" if worst <= tol else "FAILED"
        print(f"check {dtype}: worst relative error {worst:.2e} (tolerance {tol:.0e}) {status}")
        if worst > tol:
            raise SystemExit(1)


def table(shape: Shape, dtype: torch.dtype, device: torch.device, repeats: int) -> None:
    """Time the four rows for one dtype and print them with their ratio to the floor."""
    n, c, o, k, out = shape.n, shape.c, shape.o, shape.k, shape.out
    x = torch.randn(n, c, shape.size, shape.size, device=device, dtype=dtype)
    w = torch.randn(out, out, o, c, k, k, device=device, dtype=dtype) / k / math.sqrt(c)
    wconv = w[0, 0].clone()
    elt = x.element_size()
    flops = 2 * n * w.numel()
    io = (x.numel() + n * o * out * out) * elt
    peak, bw = peak_matmul(device, dtype, max(5, repeats // 5)), bandwidth(device, repeats)
    floors = {
        "fwd": max(flops / peak, (io + w.numel() * elt) / bw),
        "fwd+bwd": max(3 * flops / peak, (2 * io + 3 * w.numel() * elt) / bw),
    }
    ops: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
        "triton_local": lambda x, w: triton_local.locally_connected(x, w, None, (1, 1), (1, 1), 1),
        "unfold+einsum": lambda x, w: unfold_einsum(x, w, k),
        "F.conv2d (shared kernel)": lambda x, w: F.conv2d(x, w),
    }
    print(
        f"\n{dtype}, N={n} C={c} {shape.size}x{shape.size} k={k} -> O={o} {out}x{out}: "
        f"{flops / 1e9:.2f} GFLOP, W {w.numel() * elt / 1e6:.1f} MB; "
        f"measured peak {peak / 1e12:.1f} TFLOP/s, bandwidth {bw / 1e12:.2f} TB/s"
    )
    print(f"{'op':<26}{'fwd us':>12}{'x floor':>10}{'fwd+bwd us':>12}{'x floor':>10}")
    print(
        f"{'floor':<26}{floors['fwd'] * 1e6:>12.1f}{1:>10.2f}"
        f"{floors['fwd+bwd'] * 1e6:>12.1f}{1:>10.2f}"
    )
    for name, op in ops.items():
        weight = wconv if name.startswith("F.conv") else w
        xg, wg = x.clone().requires_grad_(), weight.clone().requires_grad_()
        gy = torch.randn_like(op(x, weight))

        def forward(op=op, weight=weight) -> None:
            with torch.no_grad():
                op(x, weight)

        def forward_backward(op=op, xg=xg, wg=wg, gy=gy) -> None:
            torch.autograd.grad(op(xg, wg), (xg, wg), gy)

        fwd, both = timer(device, forward, repeats), timer(device, forward_backward, repeats)
        print(
            f"{name:<26}{fwd * 1e6:>12.1f}{fwd / floors['fwd']:>10.2f}"
            f"{both * 1e6:>12.1f}{both / floors['fwd+bwd']:>10.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="L4")
    parser.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["bf16", "fp32"])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    torch.backends.cudnn.allow_tf32 = False  # every float32 row computes in IEEE float32
    print(f"device {name}; torch {torch.__version__}; triton {triton.__version__}")
    check(device, [DTYPES[d] for d in args.dtypes])
    for dtype in args.dtypes:
        table(SHAPES[args.shape], DTYPES[dtype], device, args.repeats)


if __name__ == "__main__":
    main()
