"""How much of the locally connected forward is layout, on the shapes of connectivity.py.

    python benchmarks/layout_floor.py [--quick] [--repeats R] [--cases NAMES]

The "bmm floor" of benchmarks/connectivity.py is one ``torch.bmm`` on patches already laid out as
``(P, C*K, N)``. An op that takes ``(N, C, *S)`` and returns ``(N, O, *out)`` must also move the
input to a batch-last layout and the products back, however it computes them. This script times,
on each locally connected shape and in one run (the calls taking turns within every repeat): the
floor, the two copies the chunked kernel makes around it (the input to ``(*S, C, N)``, the
products ``(P, N, O)`` to ``(N, O, P)`` by one 2-D transpose), their sum, and locality's forward.
Where the two copies alone cost more than the floor, no kernel built from torch ops that reads and
writes those layouts can come within 2x of the floor.
"""

from __future__ import annotations

import argparse
import math
import os

import torch
from connectivity import Call, Case, cases, interleaved_ms, tensors

from locality.functional import locally_connected
from locality.kernels import chunked_bmm


def calls(case: Case) -> dict[str, Call]:
    """Name -> timed call (forward only) on fresh tensors of the case's shapes."""
    p, ck = math.prod(case.out), case.c * case.k**case.d
    patches = torch.randn(p, ck, case.n)
    weights = torch.randn(p, case.o, ck)
    products = torch.randn(p, case.n * case.o)
    x, ((w, b),) = tensors(case, "cpu")
    return {
        "bmm floor": lambda _: torch.bmm(weights, patches),
        "input to batch-last": lambda _: chunked_bmm.batch_last(x),
        "products to NCHW": lambda _: products.t().contiguous(),
        "locality": lambda _: locally_connected(x, w, b, case.stride),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes (smoke test)")
    parser.add_argument("--repeats", type=int, default=None, help="default 20, quick 2")
    parser.add_argument("--cases", default=None, help="shapes whose names contain one of these")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 20)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {os.cpu_count()}-core CPU, {torch.get_num_threads()} "
        f"threads, median of {repeats} after 2 warm-ups, forward only, ms (x the bmm floor)"
    )
    head = "| shape | bmm floor | input to batch-last | products to NCHW | both copies | locality |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    with torch.no_grad():
        for case in cases(args.quick, args.cases):
            if case.kind != "local":
                continue
            ms = interleaved_ms(calls(case), repeats, "cpu")
            floor = ms["bmm floor"]
            copies = ms["input to batch-last"] + ms["products to NCHW"]
            cells = [ms["bmm floor"], ms["input to batch-last"], ms["products to NCHW"], copies]
            cells.append(ms["locality"])
            print(
                f"| {case.name} | " + " | ".join(f"{v:.2f} ({v / floor:.1f})" for v in cells) + " |"
            )


if __name__ == "__main__":
    main()
