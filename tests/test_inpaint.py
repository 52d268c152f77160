"""The inpainting example: masks, U-Net, training, the shipped checkpoint's results, the command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("skimage")
pytest.importorskip("cv2")
pytest.importorskip("matplotlib")

from locality.cli import main  # noqa: E402
from locality.inpaint.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint  # noqa: E402
from locality.inpaint.evaluate import (  # noqa: E402
    evaluation_samples,
    inpaint_image,
    network_method,
    score,
)
from locality.inpaint.images import TEST_IMAGES, TRAIN_IMAGES  # noqa: E402
from locality.inpaint.masks import HOLE_BINS, hole_ratio, stroke_mask  # noqa: E402
from locality.inpaint.train import TrainConfig, inpainting_loss, train_inpainting  # noqa: E402
from locality.inpaint.unet import InpaintingUNet  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "inpainting.json"
METHODS = (
    "partial_conv_unet",
    "conv_unet_zero_fill",
    "telea",
    "navier_stokes",
    "biharmonic",
    "mean_fill",
)


@pytest.mark.parametrize(("hole_bin", "bounds"), list(HOLE_BINS.items()))
def test_stroke_masks_fall_in_their_bin_and_follow_the_seed(hole_bin, bounds):
    low, high = bounds
    masks = [stroke_mask((48, 64), low, high, np.random.default_rng(seed)) for seed in range(5)]
    for mask in masks:
        assert mask.shape == (48, 64) and set(np.unique(mask)) <= {0.0, 1.0}
        assert low <= hole_ratio(mask) < high
    again = stroke_mask((48, 64), low, high, np.random.default_rng(0))
    np.testing.assert_array_equal(again, masks[0])
    assert not np.array_equal(masks[0], masks[1])


def test_stroke_mask_refuses_bad_bounds():
    with pytest.raises(ValueError, match="stroke_mask: need 0 <= low < high <= 1"):
        stroke_mask((32, 32), 0.5, 0.4, np.random.default_rng(0))


def test_partial_unet_ignores_what_lies_under_the_holes():
    torch.manual_seed(0)
    model = InpaintingUNet(channels=(4, 8, 8), kernel_sizes=(5, 3, 3)).eval()
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    mask = torch.from_numpy(stroke_mask((32, 32), 0.3, 0.4, np.random.default_rng(1)))[None, None]
    other = torch.where(mask > 0, image, torch.randn_like(image) * 5)
    with torch.no_grad():
        torch.testing.assert_close(model(image, mask), model(other, mask), rtol=0, atol=0)
        no_mask = model(image, torch.ones_like(mask))
    assert not torch.allclose(no_mask, model(image, mask))


def test_ablation_has_exactly_the_partial_unets_parameters():
    partial = InpaintingUNet(partial=True).state_dict()
    conv = InpaintingUNet(partial=False)
    conv.load_state_dict(partial, strict=True)
    assert [type(m).__name__ for m in conv.modules()].count("Conv2d") == 10


def test_loss_weights_holes_six_times():
    target = torch.zeros(1, 3, 4, 4)
    mask = torch.ones(1, 1, 4, 4)
    mask[..., :2, :] = 0
    loss = inpainting_loss(torch.ones(1, 3, 4, 4), target, mask)
    assert float(loss) == pytest.approx(0.5 * 1 + 6 * 0.5 * 1)


def test_training_runs_and_is_reproducible():
    config = TrainConfig(
        steps=3,
        batch_size=2,
        crop=32,
        mask_pool=4,
        channels=(4, 8),
        kernel_sizes=(3, 3),
        train_images=("camera",),
        scales=(48,),
    )
    first, summary = train_inpainting(config)
    second, _ = train_inpainting(config)
    assert np.isfinite(summary["final_loss"]) and summary["config"]["steps"] == 3
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_results_file_has_the_schema_and_a_clean_split():
    table = json.loads(RESULTS.read_text())
    assert set(table) == {"train_images", "test_images", "rows"}
    assert table["train_images"] == list(TRAIN_IMAGES)
    assert table["test_images"] == list(TEST_IMAGES)
    assert not set(table["train_images"]) & set(table["test_images"])
    keys = {(row["method"], row["hole_bin"]) for row in table["rows"]}
    assert keys == {(m, b) for m in METHODS for b in HOLE_BINS}
    assert len(table["rows"]) == len(keys)
    for row in table["rows"]:
        assert set(row) == {"method", "hole_bin", "psnr", "ssim", "l1"}


def test_shipped_checkpoint_reproduces_the_committed_psnr_table():
    assert SHIPPED_CHECKPOINT.stat().st_size <= 5 * 2**20
    model, summary = load_checkpoint()
    assert model.partial and summary["config"]["train_images"] == list(TRAIN_IMAGES)
    committed = {
        row["hole_bin"]: row
        for row in json.loads(RESULTS.read_text())["rows"]
        if row["method"] == "partial_conv_unet"
    }
    measured = score(network_method(model), evaluation_samples())
    for hole_bin, metrics in measured.items():
        assert abs(metrics["psnr"] - committed[hole_bin]["psnr"]) <= 0.1, hole_bin
        assert abs(metrics["ssim"] - committed[hole_bin]["ssim"]) <= 0.005, hole_bin


def test_inpaint_keeps_known_pixels_and_handles_any_size():
    model, _ = load_checkpoint()
    rng = np.random.default_rng(0)
    image = rng.random((37, 50, 3), dtype=np.float32)
    mask = stroke_mask((37, 50), 0.2, 0.3, rng)
    result = inpaint_image(model, image, mask)
    assert result.shape == image.shape
    np.testing.assert_array_equal(result[mask > 0], image[mask > 0])
    assert np.abs(result[mask == 0] - image[mask == 0]).max() > 0


def test_results_figure_is_in_the_docs():
    figure = ROOT / "docs" / "results" / "inpainting.png"
    assert figure.is_file() and figure.stat().st_size > 10_000
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "inpainting.png" in (ROOT / "docs" / "results" / "inpainting.md").read_text()


def test_import_locality_does_not_import_the_inpaint_extra():
    code = (
        "import sys, locality, locality.inpaint.unet, locality.cli; "
        "print(sorted(m for m in ('skimage', 'cv2', 'sklearn') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _write_png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(pixels).save(path)


def test_cli_inpaints_with_a_mask_file(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = (rng.random((40, 56, 3)) * 255).astype(np.uint8)
    holes = np.zeros((40, 56), np.uint8)
    holes[10:20, 5:30] = 255
    _write_png(tmp_path / "in.png", pixels)
    _write_png(tmp_path / "mask.png", holes)
    out, figure = tmp_path / "out.png", tmp_path / "fig.png"
    argv = ["inpaint", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png")]
    code = main([*argv, "--out", str(out), "--figure", str(figure)])
    assert code == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "filled 11.2% of 56x40 pixels" in text
    result = np.asarray(Image.open(out))
    np.testing.assert_array_equal(result[holes == 0], pixels[holes == 0])
    assert (result[holes > 0] != pixels[holes > 0]).any()
    assert figure.read_bytes()[:4] == b"\x89PNG"


def test_cli_inpaints_generated_holes(tmp_path, capsys):
    _write_png(tmp_path / "in.png", np.full((32, 32, 3), 120, np.uint8))
    code = main(["inpaint", str(tmp_path / "in.png"), "--holes", "0.3", "--out",
                 str(tmp_path / "o.jpg"), "--figure", str(tmp_path / "f.svg")])  # fmt: skip
    assert code == 0
    assert "PSNR against the original" in capsys.readouterr().out
    assert (tmp_path / "o.jpg").is_file() and (tmp_path / "f.svg").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give an IMAGE"),
        (["{d}/in.png"], "give --mask MASK.png or --holes"),
        (["{d}/in.png", "--holes", "1.5"], "--holes must be in (0, 0.9]"),
        (["{d}/missing.png", "--holes", "0.3"], "IMAGE '{d}/missing.png' does not exist"),
        (["{d}/in.png", "--mask", "{d}/small.png"], "--mask is 8x8 but IMAGE is 16x16"),
        (["{d}/in.png", "--holes", "0.3", "--out", "{d}/nowhere/o.png"], "does not exist"),
        (["{d}/in.png", "--holes", "0.3", "--out", "{d}/in.png"], "would overwrite an input"),
        (["{d}/in.png", "--holes", "0.3", "--figure", "{d}/f.txt"], "--figure must end in"),
        (["{d}/in.png", "--holes", "0.3", "--checkpoint", "{d}/in.png"], "cannot read"),
        (["{d}/not_an_image.png", "--holes", "0.3"], "is not a readable image"),
        (["--train", "{d}/in.png"], "--train takes no IMAGE"),
        (["--train", "--out", "{d}/c.txt"], "--out must end in .pt"),
    ],
)
def test_cli_user_errors_are_one_line_and_write_nothing(tmp_path, argv, message, capsys):
    _write_png(tmp_path / "in.png", np.zeros((16, 16, 3), np.uint8))
    _write_png(tmp_path / "small.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "not_an_image.png").write_text("hello")
    before = sorted(tmp_path.iterdir())
    code = main(["inpaint", *(a.format(d=tmp_path) for a in argv)])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("locality inpaint: error: ") and err.count("\n") == 1
    assert message.format(d=tmp_path) in err
    assert sorted(tmp_path.iterdir()) == before


def test_cli_trains_a_checkpoint_that_the_command_then_uses(tmp_path, monkeypatch, capsys):
    import dataclasses

    import locality.inpaint.train as train_module

    @dataclasses.dataclass(frozen=True)
    class SmallConfig(TrainConfig):  # the real defaults take minutes; the path is the same
        batch_size: int = 2
        crop: int = 32
        mask_pool: int = 4
        channels: tuple[int, ...] = (4, 8)
        kernel_sizes: tuple[int, ...] = (3, 3)
        train_images: tuple[str, ...] = ("camera",)
        scales: tuple[int, ...] = (48,)

    monkeypatch.setattr(train_module, "TrainConfig", SmallConfig)
    checkpoint = tmp_path / "small.pt"
    assert main(["inpaint", "--train", "--steps", "2", "--out", str(checkpoint)]) == 0
    assert f"wrote {checkpoint}" in capsys.readouterr().out
    model, summary = load_checkpoint(checkpoint)
    assert model.channels == (4, 8) and summary["config"]["steps"] == 2
    _write_png(tmp_path / "in.png", np.full((20, 24, 3), 90, np.uint8))
    argv = ["inpaint", str(tmp_path / "in.png"), "--holes", "0.2", "--checkpoint", str(checkpoint)]
    assert main([*argv, "--out", str(tmp_path / "o.png"), "--figure", str(tmp_path / "f.png")]) == 0
