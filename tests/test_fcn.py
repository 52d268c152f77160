"""fully_convolutional, sliding_window, shift_and_stitch and window_boxes."""

import pytest
import torch
from torch import nn

from locality.convert import (
    Geometry,
    fully_convolutional,
    shift_and_stitch,
    sliding_window,
    window_boxes,
)

F64 = torch.float64


def close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def note_004_net() -> nn.Sequential:
    """Trained on 32x32x1; last feature map 4x4x3 at total stride 8; head FC(48 -> 10)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 2, stride=2),
        nn.ReLU(),  # 16
        nn.Conv2d(6, 6, 2, stride=2),
        nn.ReLU(),  # 8
        nn.MaxPool2d(2),  # 4
        nn.Conv2d(6, 3, 1),
        nn.ReLU(),  # 4x4x3
        nn.Flatten(),
        nn.Linear(48, 10),
    ).to(F64)


class VGGStyle(nn.Module):
    """torchvision's VGG structure, small: features / avgpool / torch.flatten(x, 1) / classifier."""

    def __init__(self, padding: int = 1, batch_norm: bool = True):
        super().__init__()
        norm = [nn.BatchNorm2d(8)] if batch_norm else []
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=padding),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3, padding=padding),
            *norm,
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((3, 3))
        self.classifier = nn.Sequential(
            nn.Linear(8 * 3 * 3, 16),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(16, 16),
            nn.BatchNorm1d(16),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(16, 5),
        )

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class AlexNetStyle(nn.Module):
    """torchvision's AlexNet structure (Dropout first in the classifier), view-based flatten."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 5, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(
            nn.Dropout(), nn.Linear(16, 8), nn.ReLU(True), nn.Linear(8, 4)
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.view(x.size(0), -1))


def randomize_batchnorm(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_note_004_example_end_to_end():
    torch.manual_seed(0)
    net = note_004_net()
    fcn = fully_convolutional(net, (1, 32, 32))
    assert fcn.geometry == Geometry(stride=(8, 8), receptive_field=(32, 32), offset=(0, 0))
    x = torch.randn(2, 1, 64, 64, dtype=F64)
    scores = fcn(x)
    assert scores.shape == (2, 10, 5, 5)
    windows = sliding_window(net, x, 32, 8)
    assert windows.shape == (2, 10, 5, 5)
    close(scores, windows)
    # one window, by hand: cell (2, 3) is the classifier on the window at (16, 24)
    close(scores[:, :, 2, 3], net(x[:, :, 16:48, 24:56]))
    head = fcn.get_submodule("8")
    assert tuple(head.weight.shape) == (10, 3, 4, 4)
    assert head.weight.numel() == 48 * 10 == net[8].weight.numel()
    close(fcn(x[..., :32, :32]).flatten(1), net(x[..., :32, :32]))


def test_original_model_is_untouched():
    net = note_004_net()
    fully_convolutional(net, (1, 32, 32))
    assert isinstance(net[8], nn.Linear) and isinstance(net[7], nn.Flatten)


def test_padding_free_backbone_equals_image_windows():
    torch.manual_seed(1)
    model = randomize_batchnorm(VGGStyle(padding=0)).to(F64)
    fcn = fully_convolutional(model, (3, 18, 18))  # 18 -16- 8 -6- 3: avgpool is the identity
    assert "avgpool" not in dict(fcn.named_modules())
    assert fcn.geometry.receptive_field == (18, 18) and fcn.geometry.offset == (0, 0)
    x = torch.randn(2, 3, 30, 34, dtype=F64)
    close(fcn(x), sliding_window(model, x, 18, fcn.geometry.stride))
    boxes = window_boxes(fcn.geometry, fcn(x).shape[2:], x.shape[2:])
    assert boxes.inside.all()
    assert boxes.boxes[1, 2].tolist() == [4, 8, 22, 26]


def test_padded_backbone_equals_head_over_feature_map():
    torch.manual_seed(2)
    model = randomize_batchnorm(VGGStyle(padding=1)).to(F64)
    fcn = fully_convolutional(model, (3, 12, 12))
    x = torch.randn(2, 3, 28, 20, dtype=F64)
    features = model.features(x)
    head = lambda z: model.classifier(torch.flatten(z, 1))  # noqa: E731
    close(fcn(x), sliding_window(head, features, 3, 1))
    # the image windows differ: they are padded at their own borders
    assert not torch.allclose(fcn(x), sliding_window(model, x, 12, 4))
    geometry = fcn.geometry
    assert geometry.stride == (4, 4) and geometry.offset == (-3, -3)
    boxes = window_boxes(geometry, fcn(x).shape[2:], x.shape[2:])
    assert not boxes.inside[0, 0] and boxes.inside.any()


def test_alexnet_style_view_flatten_and_dropout_first():
    torch.manual_seed(3)
    model = AlexNetStyle().to(F64).eval()
    fcn = fully_convolutional(model, (3, 15, 15))  # 15 -5/2- 6 -3/2- 2
    x = torch.randn(1, 3, 31, 23, dtype=F64)
    close(fcn(x), sliding_window(model, x, 15, 4))
    assert "size" not in fcn.code


def test_global_average_pool_becomes_stride_one_pool():
    torch.manual_seed(4)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    ).to(F64)
    fcn = fully_convolutional(model, (3, 8, 8))
    x = torch.randn(2, 3, 11, 9, dtype=F64)
    close(fcn(x), sliding_window(model, x, 8, 1))


def test_coarser_adaptive_pool_dilates_the_head():
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3),
        nn.AdaptiveMaxPool2d(2),
        nn.Flatten(),
        nn.Linear(12, 4),
        nn.Tanh(),
        nn.Linear(4, 3),
        nn.Softmax(dim=-1),
    ).to(F64)
    fcn = fully_convolutional(model, (2, 10, 10))  # 8x8 map pooled to 2x2
    assert fcn.geometry.stride == (1, 1) and fcn.geometry.receptive_field == (10, 10)
    x = torch.randn(2, 2, 13, 12, dtype=F64)
    close(fcn(x), sliding_window(model, x, 10, 1))


class KerasBorn(nn.Module):
    """Flattens channels-last features, as a model ported from Keras does."""

    def __init__(self, d: int):
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[d]
        self.d = d
        self.conv = conv(2, 3, 2)
        self.fc = nn.Linear(3 * 3**d, 4)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        x = x.permute(0, *range(2, self.d + 2), 1).contiguous()
        return self.fc(x.reshape(x.shape[0], -1))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_channels_last_flatten_reorders_weights(d):
    torch.manual_seed(6)
    model = KerasBorn(d).to(F64)
    fcn = fully_convolutional(model, (2, *(4,) * d))
    x = torch.randn(2, 2, *(6,) * d, dtype=F64)
    close(fcn(x), sliding_window(model, x, 4, 1))


@pytest.mark.parametrize("d", [1, 3])
def test_one_and_three_dimensional_models(d):
    torch.manual_seed(7)
    conv = {1: nn.Conv1d, 3: nn.Conv3d}[d]
    pool = {1: nn.MaxPool1d, 3: nn.MaxPool3d}[d]
    model = nn.Sequential(
        conv(1, 2, 3),
        nn.ReLU(),
        pool(2),
        nn.Flatten(),
        nn.Linear(2 * 3**d, 5),
        nn.BatchNorm1d(5),
        nn.ReLU(),
        nn.Linear(5, 3),
    ).to(F64)
    model = randomize_batchnorm(model)
    fcn = fully_convolutional(model, (1, *(8,) * d))
    assert fcn.geometry.stride == (2,) * d and fcn.geometry.receptive_field == (8,) * d
    x = torch.randn(2, 1, *(12,) * d, dtype=F64)
    scores = fcn(x)
    assert scores.shape == (2, 3, *(3,) * d)
    close(scores, sliding_window(model, x, 8, 2))


def test_shift_and_stitch_equals_finer_windows():
    torch.manual_seed(8)
    net = note_004_net()
    fcn = fully_convolutional(net, (1, 32, 32))
    x = torch.randn(1, 1, 50, 57, dtype=F64)
    for factor in (2, (4, 8)):
        fine = shift_and_stitch(fcn, x, factor)
        step = tuple(8 // f for f in ((factor,) * 2 if isinstance(factor, int) else factor))
        close(fine, sliding_window(net, x, 32, step))
    with pytest.raises(ValueError, match="must divide"):
        shift_and_stitch(fcn, x, 3)


def test_keeps_dtype_and_training_mode():
    net = note_004_net().float().train()
    fcn = fully_convolutional(net, (1, 32, 32))
    assert fcn.training and fcn.get_submodule("8").weight.dtype == torch.float32


def test_sliding_window_shapes():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 4, 5))
    x = torch.randn(2, 2, 7, 9)
    out = sliding_window(model, x, (3, 4), (2, 5))
    assert out.shape == (2, 5, 3, 2)
    torch.testing.assert_close(out[1, :, 2, 1], model(x[1:2, :, 4:7, 5:9])[0])


class Unsupported(nn.Module):
    def __init__(self, op):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(18, 4)
        self.op = op

    def forward(self, x):
        y = self.conv(x)
        return self.op(self, y)


@pytest.mark.parametrize(
    ("op", "message"),
    [
        (lambda m, y: m.fc(torch.flatten(y, 1)).cumsum(1), "cannot convert node 'cumsum'"),
        (lambda m, y: m.fc(torch.flatten(y, 1)) + y.sum(), "mixes the classifier head"),
        (lambda m, y: y.sum((2, 3)), "found no flatten"),
    ],
)
def test_unsupported_patterns_name_the_node(op, message):
    with pytest.raises(ValueError, match=message):
        fully_convolutional(Unsupported(op), (1, 5, 5))


def test_non_identity_adaptive_pool_in_backbone_is_refused():
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3),
        nn.AdaptiveAvgPool2d(4),
        nn.Conv2d(2, 2, 1),
        nn.Flatten(),
        nn.Linear(32, 3),
    )
    with pytest.raises(ValueError, match="adaptive|changes spatial size"):
        fully_convolutional(model, (1, 10, 10))


def test_torchvision_vgg_and_alexnet():
    models = pytest.importorskip("torchvision.models")
    torch.manual_seed(9)
    # at 224 both feature maps match the (7, 7) and (6, 6) adaptive poolings, which are removed
    for model in (models.alexnet(num_classes=7), models.vgg11(num_classes=7)):
        model = model.double().eval()
        fcn = fully_convolutional(model, (3, 224, 224))
        assert "avgpool" not in dict(fcn.named_modules())
        x = torch.randn(1, 3, 224 + fcn.geometry.stride[0], 224, dtype=F64)
        scores = fcn(x)
        assert scores.shape == (1, 7, 2, 1)
        crop = x[..., :224, :]
        close(fcn(crop).flatten(1), model(crop))
        features = model.features(x)
        head = lambda z, m=model: m.classifier(torch.flatten(z, 1))  # noqa: E731
        close(scores, sliding_window(head, features, features.shape[-1], 1))
