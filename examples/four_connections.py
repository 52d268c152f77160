"""Note 000: the four ways to connect two layers, side by side on one input, with their counts."""

import torch

from locality import LocallyConnected2d, TiledConv2d


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 1, 8, 8)
    layers = {
        "fully connected": LocallyConnected2d(1, 36, 8, input_size=8),  # one position, all inputs
        "locally connected": LocallyConnected2d(1, 1, 3, input_size=8),
        "tiled convolution": TiledConv2d(1, 1, 3, tile_size=2),
        "convolution": torch.nn.Conv2d(1, 1, 3),
    }
    for name, layer in layers.items():
        weights = layer.weight.numel()
        out = layer(x)
        print(f"{name:18} output {tuple(out.shape)}  weights {weights}")
    assert layers["locally connected"].weight.numel() == 36 * 9
    assert layers["tiled convolution"].weight.numel() == 4 * 9
    assert layers["convolution"].weight.numel() == 9


if __name__ == "__main__":
    main()
