"""The notes' parameter counts (002, 003), computed by building the layers on the meta device.

Nothing is allocated: a 10^12-weight layer builds in milliseconds on ``device="meta"``. The note
that calls such a float32 layer "about 400 MB" is off by four orders of magnitude: it is 4 TB.
"""

import torch

from locality import LocallyConnected2d


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    meta = {"device": "meta", "bias": False}
    # 002: a 1000x1000 image into 10^6 hidden units.
    dense = LocallyConnected2d(1, 10**6, 1000, input_size=1000, **meta)  # one position: dense
    local = LocallyConnected2d(1, 1, 10, input_size=1000, **meta)  # 991x991 units, 10x10 each
    shared = torch.nn.Conv2d(1, 1, 10, device="meta", bias=False)
    print(
        f"fully connected 1000x1000 -> 10^6: {count(dense):.3g} weights "
        f"({count(dense) * 4 / 1e12:.0f} TB in float32)"
    )
    print(f"locally connected, 10x10 fields:   {count(local):.3g} weights (about 10^8)")
    print(f"convolution, one 10x10 kernel:     {count(shared)} weights")
    assert count(dense) == 10**12 and count(shared) == 100
    assert 0.9e8 < count(local) <= 1e8

    # 003: a 500x500 image, about 10^5 units with 10x10 receptive fields
    # (99 x 99 positions, 10 units at each: 98,010 units).
    local = LocallyConnected2d(1, 10, 10, input_size=500, stride=5, **meta)
    units = local.output_size[0] * local.output_size[1] * 10
    print(
        f"500x500 image, {units} units: fully connected {500 * 500 * units:.3g} (about 2.5e10), "
        f"local 10x10 {count(local):.3g} (about 1e7), shared 10x10 kernel 100, "
        f"64 shared kernels {64 * 100}"
    )
    assert count(local) == units * 100


if __name__ == "__main__":
    main()
