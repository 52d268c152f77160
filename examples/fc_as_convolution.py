"""Note 004: a fully connected layer on a 4x4x3 map is a 4x4 convolution with 10 kernels, and a
locally connected layer with a single output position; a tiled convolution with tile 1 is a
convolution.
"""

import torch
import torch.nn.functional as F

from locality import LocallyConnected2d, TiledConv2d


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 4)
    fc = torch.nn.Linear(48, 10)

    conv_weight = fc.weight.view(10, 3, 4, 4)  # 48 x 10 = a 4x4x3x10 convolution
    by_conv = F.conv2d(x, conv_weight, fc.bias).flatten(1)

    local = LocallyConnected2d(3, 10, 4, input_size=4, shared_bias=True)
    with torch.no_grad():
        local.weight.copy_(conv_weight.view(1, 1, 10, 3, 4, 4))
        local.bias.copy_(fc.bias)
    by_local = local(x).flatten(1)

    by_fc = fc(x.flatten(1))
    torch.testing.assert_close(by_conv, by_fc)
    torch.testing.assert_close(by_local, by_fc)
    print("FC 48 -> 10 == 4x4x3x10 convolution == locally connected with one position")

    # Run on a larger input: the convolution slides the FC over every 4x4 window (note 004's
    # 32x32 -> 64x64 example, at a small scale).
    big = torch.randn(1, 3, 8, 8)
    scores = F.conv2d(big, conv_weight, fc.bias, stride=2)  # 3x3 score map
    windows = torch.stack(
        [
            fc(big[:, :, i : i + 4, j : j + 4].flatten(1))
            for i in range(0, 5, 2)
            for j in range(0, 5, 2)
        ],
        -1,
    ).view(1, 10, 3, 3)
    torch.testing.assert_close(scores, windows)
    print(f"8x8 input: a {tuple(scores.shape[-2:])} score map == 9 sliding FC windows")

    tiled = TiledConv2d(3, 10, 4, tile_size=1)
    with torch.no_grad():
        tiled.weight.copy_(conv_weight.view(1, 1, 10, 3, 4, 4))
        tiled.bias.copy_(fc.bias.view(1, 1, 10))
    torch.testing.assert_close(tiled(big), F.conv2d(big, conv_weight, fc.bias))
    print("tiled convolution with tile_size=1 == convolution")


if __name__ == "__main__":
    main()
