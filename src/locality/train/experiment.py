"""Train every family over several seeds and tabulate them beside the published numbers.

``run_experiment("mnist1d")`` trains dense, locally connected, tiled (t = 2, 4) and convolutional
models (:mod:`locality.train.models`) on MNIST-1D and on its spatially shuffled variant, each with
several seeds, and reports the test accuracy (mean and sample standard deviation over seeds),
parameters and training time (a single seed has no standard deviation: it is ``None`` in the
rows and "n/a" in the tables). For every run it also measures accuracy on the test inputs
translated along their last axis by ``0 .. max_shift`` positions, without retraining: a model
whose weights are shared across positions should hold up, a model with a weight per position need
not. MNIST-1D signals are translated circularly (``torch.roll``), as MNIST-1D itself translates
them; images (``digits``) are translated with zero padding, the background colour, so a shift
moves the digit off the image instead of wrapping it round, and the shift must be smaller than the
image's width.

Each finished run is saved under ``out_dir/runs/`` (written to a temporary name and renamed, so a
killed experiment leaves no half-written file); running the same experiment again skips those
runs, so an interrupted experiment continues where it stopped.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from locality._atomic import write_text_atomically
from locality.train import data as datasets
from locality.train.data import Data
from locality.train.distributed import resolve_device
from locality.train.loop import TrainConfig, evaluate, train_family
from locality.train.models import FAMILIES

EXPERIMENTS: dict[str, tuple[str, ...]] = {
    "mnist1d": ("mnist1d", "mnist1d-shuffled"),
    "digits": ("digits",),
}

# (family, tile_size), in the order of the table: from no sharing to full sharing.
MODELS: tuple[tuple[str, int | None], ...] = (
    ("dense", None),
    ("locally_connected", None),
    ("tiled", 4),
    ("tiled", 2),
    ("conv", None),
)

# Test accuracy in the MNIST-1D README (Greydanus & Kobak, 2020). Their MLP (two hidden layers of
# 100 units, 15,210 parameters) is not our dense family, which has the conv skeleton's layer shapes.
PUBLISHED: dict[str, dict[str, float]] = {
    "mnist1d": {"dense": 0.68, "conv": 0.94},
    "mnist1d-shuffled": {"dense": 0.68, "conv": 0.56},
}
PUBLISHED_PARAMETERS: dict[str, int] = {"dense": 15_210, "conv": 5_210}

# How each dataset's test inputs are translated: "roll" wraps round, "pad" fills with zeros.
SHIFT_MODES: dict[str, str] = {"mnist1d": "roll", "mnist1d-shuffled": "roll", "digits": "pad"}
# The default largest test-time shift: a quarter of MNIST-1D's 40 positions, half a digit's 8.
DEFAULT_MAX_SHIFT: dict[str, int] = {"mnist1d": 10, "digits": 4}

# The settings that change a run's result; a finished run is reused only if they all match.
_SETTINGS = ("steps", "batch_size", "lr", "weight_decay", "seed")


@dataclass(frozen=True)
class Job:
    """One training run of an experiment."""

    dataset: str
    family: str
    tile_size: int | None
    seed: int

    @property
    def key(self) -> str:
        model = f"{self.family}-{self.tile_size}" if self.tile_size else self.family
        return f"{self.dataset}_{model}_seed-{self.seed}"


def parse_models(spec: str) -> tuple[tuple[str, int | None], ...]:
    """``"dense,tiled-2,conv"`` -> ``(("dense", None), ("tiled", 2), ("conv", None))``."""
    models = []
    for item in (part.strip() for part in spec.split(",")):
        family, _, tile = item.partition("-")
        if (
            family not in FAMILIES
            or (family == "tiled") != bool(tile)
            or (tile and not tile.isdigit())
        ):
            raise ValueError(
                f"models: each entry must be one of dense, locally_connected, conv or tiled-T with "
                f"an int T >= 1, got {item!r} in {spec!r}"
            )
        if tile and int(tile) < 1:
            raise ValueError(f"models: tile size must be >= 1, got {item!r} in {spec!r}")
        models.append((family, int(tile) if tile else None))
    return tuple(models)


def run_experiment(
    name: str,
    *,
    seeds: int = 5,
    config: TrainConfig | None = None,
    models: Sequence[tuple[str, int | None]] = MODELS,
    max_shift: int | None = None,
    out_dir: str | os.PathLike = "results",
    workers: int = 1,
    threads: int = 1,
    device: str = "cpu",
    progress: bool = True,
) -> list[dict]:
    """Run experiment ``name`` (a key of :data:`EXPERIMENTS`) and write its table, JSON and plots.

    Args:
        name: ``"mnist1d"`` (MNIST-1D and its shuffled variant) or ``"digits"``.
        seeds: runs per model, with seeds ``0 .. seeds - 1``.
        config: optimisation settings (``seed`` is replaced per run); default :class:`TrainConfig`.
        models: ``(family, tile_size)`` pairs.
        max_shift: test-time translations ``0 .. max_shift`` positions along the last axis
            (default :data:`DEFAULT_MAX_SHIFT`); it must be smaller than that axis.
        out_dir: where ``<name>.json``, ``<name>.md``, the plots and ``runs/`` go.
        workers: runs trained at once, in separate processes.
        threads: torch threads per process.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (every worker uses the same device).
        progress: a progress bar over runs.

    Returns:
        The table rows, as written to ``<name>.json``.
    """
    if name not in EXPERIMENTS:
        raise ValueError(
            f"run_experiment: name must be one of {', '.join(EXPERIMENTS)}, got {name!r}"
        )
    if max_shift is None:
        max_shift = DEFAULT_MAX_SHIFT[name]
    for arg, value, least in (
        ("seeds", seeds, 1),
        ("max_shift", max_shift, 0),
        ("workers", workers, 1),
        ("threads", threads, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"run_experiment: {arg} must be an int >= {least}, got {value!r}")
    config = config or TrainConfig()
    resolve_device(device)
    out = Path(out_dir)
    # Seed-major, so that an interrupted experiment has whole seeds done for every model.
    jobs = [
        Job(dataset, family, tile, seed)
        for seed in range(seeds)
        for dataset in EXPERIMENTS[name]
        for family, tile in models
    ]
    if out.exists() and not out.is_dir():
        raise ValueError(f"run_experiment: out_dir {str(out)!r} is a file; expected a folder")
    pending = [job for job in jobs if not _run_file(out, job).is_file()]
    for job in (job for job in jobs if job not in pending):
        _check_finished(_run_file(out, job), replace(config, seed=job.seed), max_shift)
    loaded = {dataset: datasets.load(dataset) for dataset in {job.dataset for job in pending}}
    for dataset in loaded.values():
        width = dataset.input_shape[-1]
        if max_shift >= width:
            wraps = SHIFT_MODES.get(dataset.name, "pad") == "roll"
            raise ValueError(
                f"run_experiment: max_shift must be smaller than the {width} positions of "
                f"{dataset.name}'s last axis (a larger shift "
                f"{'wraps round to a smaller one' if wraps else 'leaves an empty image'}), got "
                f"{max_shift}"
            )
    try:
        (out / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"run_experiment: cannot create the folder out_dir {str(out)!r} ({error.strerror})"
        ) from None
    tasks = [(job, loaded[job.dataset], config, max_shift, device, threads) for job in pending]

    bar = _bar(len(jobs), len(jobs) - len(pending), enabled=progress)
    for job, record in _finished(tasks, workers):
        path = _run_file(out, job)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, json.dumps(record, indent=2) + "\n")
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"{job.key}: {record['test_accuracy']:.3f}")
    if bar is not None:
        bar.close()

    records = [_read_run(_run_file(out, job)) for job in jobs]
    rows = summarise(records)
    write_text_atomically(out / f"{name}.json", json.dumps(rows, indent=2) + "\n")
    write_text_atomically(
        out / f"{name}.md", markdown_table(rows, records, config, seeds, max_shift)
    )
    _plot(name, rows, records, out)
    return rows


def _run_file(out: Path, job: Job) -> Path:
    return out / "runs" / f"{job.key}.json"


def _read_run(path: Path) -> dict:
    """A finished run's record, or a ValueError naming the file that cannot be read."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"run_experiment: cannot read the finished run {str(path)!r} ({error}); delete it to "
            f"run it again"
        ) from error
    if not isinstance(record, dict):
        raise ValueError(
            f"run_experiment: {str(path)!r} holds {type(record).__name__}, not a run record; "
            f"delete it to run it again"
        )
    return record


def _check_finished(path: Path, config: TrainConfig, max_shift: int) -> None:
    """Refuse to mix a run finished with other settings into this experiment's table."""
    record = _read_run(path)
    saved = {key: record.get("config", {}).get(key) for key in _SETTINGS}
    wanted = {key: getattr(config, key) for key in _SETTINGS}
    shifts = len(record.get("shift_accuracy", ())) - 1
    if saved != wanted or shifts != max_shift:
        raise ValueError(
            f"run_experiment: {path} was trained with {saved} and max_shift {shifts}, not "
            f"{wanted} and max_shift {max_shift}; use another out_dir or delete it"
        )


def _finished(tasks: list[tuple], workers: int) -> Iterator[tuple[Job, dict]]:
    """``(job, record)`` for each task as it finishes, in this process or in a pool of workers."""
    if workers == 1:
        for task in tasks:
            yield task[0], _run_job(task)
        return
    context = torch.multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(_run_job, task): task[0] for task in tasks}
        for future in as_completed(futures):
            yield futures[future], future.result()


def _run_job(task: tuple[Job, Data, TrainConfig, int, str, int]) -> dict:
    """Train one run; return its result with the accuracy under each test-time shift."""
    job, data, config, max_shift, device, threads = task
    torch.set_num_threads(threads)
    config = replace(config, seed=job.seed)
    model, result = train_family(
        job.family, data, config, tile_size=job.tile_size, device=device, progress=False
    )
    device_ = next(model.parameters()).device
    x_test, y_test = data.x_test.to(device_), data.y_test.to(device_)
    mode = SHIFT_MODES.get(job.dataset, "pad")
    shift_accuracy = [
        evaluate(model, shift(x_test, s, mode), y_test)[1] for s in range(max_shift + 1)
    ]
    record = asdict(result)
    record.update(
        family=job.family,
        tile_size=job.tile_size,
        config=asdict(config),
        shift_accuracy=shift_accuracy,
        shift_mode=mode,
        machine=machine(),
        device=str(device_),
    )
    return record


def shift(x: torch.Tensor, positions: int, mode: str) -> torch.Tensor:
    """``x`` moved by ``positions`` along its last axis: wrapping round (``"roll"``) or with
    zeros coming in and the far end dropped (``"pad"``); same shape as ``x``."""
    if mode == "roll":
        return torch.roll(x, positions, dims=-1)
    if positions == 0:
        return x
    return F.pad(x, (positions, 0))[..., : x.shape[-1]]


def _how_shifted(records: Sequence[dict]) -> str:
    """How the runs shifted their test inputs, from each record's ``shift_mode``."""
    modes = {record.get("shift_mode", "roll") for record in records}
    if modes == {"roll"}:
        return "every input rolled round, what leaves the far end coming back at the start"
    if modes == {"pad"}:
        return "zeros coming in, the far end dropped"
    return "MNIST-1D rolled round (as MNIST-1D translates), images padded with zeros"


def summarise(records: Sequence[dict]) -> list[dict]:
    """One row per (dataset, model) in the schema of ``docs/results/mnist1d.json``."""
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault((record["dataset"], record["family"], record["tile_size"]), []).append(
            record
        )
    rows = []
    for (dataset, family, tile), runs in groups.items():
        accuracies = [run["test_accuracy"] for run in runs]
        rows.append(
            {
                "model": family,
                "tile_size": tile,
                "dataset": dataset,
                "test_accuracy_mean": statistics.fmean(accuracies),
                "test_accuracy_std": statistics.stdev(accuracies) if len(runs) > 1 else None,
                "seeds": len(runs),
                "parameters": runs[0]["parameters"],
                "train_seconds": statistics.fmean(run["train_seconds"] for run in runs),
            }
        )
    return rows


def markdown_table(
    rows: Sequence[dict], records: Sequence[dict], config: TrainConfig, seeds: int, max_shift: int
) -> str:
    """The results as Markdown: the table, the shift table, settings, command and machine."""
    lines = [
        "| dataset | model | parameters | test accuracy (mean ± std) | published | train s / run |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        model = f"tiled (t={row['tile_size']})" if row["model"] == "tiled" else row["model"]
        published = PUBLISHED.get(row["dataset"], {}).get(row["model"])
        lines.append(
            f"| {row['dataset']} | {model} | {row['parameters']:,} | "
            f"{format_accuracy(row['test_accuracy_mean'], row['test_accuracy_std'])} | "
            f"{f'{100 * published:.0f}%' if published is not None else ''} | "
            f"{row['train_seconds']:.1f} |"
        )
    if any(row["dataset"] in PUBLISHED for row in rows):
        lines += [
            "",
            "Published: the MNIST-1D README (Greydanus & Kobak, 2020). Their CNN has the conv "
            f"family's layers ({PUBLISHED_PARAMETERS['conv']:,} parameters); their MLP has two "
            f"hidden layers of 100 units ({PUBLISHED_PARAMETERS['dense']:,} parameters), not the "
            "dense family's layer shapes.",
        ]
    shifts = sorted({0, 1, 2, max_shift // 2, max_shift} & set(range(max_shift + 1)))
    command = shlex.join(["locality", *sys.argv[1:]]) if sys.argv[1:] else "run_experiment(...)"
    lines += [
        "",
        "Test accuracy (mean over seeds) with the test inputs shifted by s positions along the "
        f"last axis, no retraining: {_how_shifted(records)} (not for shuffled data, where a "
        "shift is not a translation):",
        "",
        "| dataset | model | " + " | ".join(f"s={s}" for s in shifts) + " |",
        "|---|---|" + "---:|" * len(shifts),
    ]
    for row in (r for r in rows if not r["dataset"].endswith("-shuffled")):
        runs = [
            r
            for r in records
            if (r["dataset"], r["family"], r["tile_size"])
            == (row["dataset"], row["model"], row["tile_size"])
        ]
        curve = _mean_curve(runs)
        model = f"tiled (t={row['tile_size']})" if row["model"] == "tiled" else row["model"]
        lines.append(
            f"| {row['dataset']} | {model} | "
            + " | ".join(f"{100 * curve[s]:.1f}%" for s in shifts)
            + " |"
        )
    lines += [
        "",
        f"Settings: {seeds} seeds per model (0..{seeds - 1}), Adam lr {config.lr}, weight decay "
        f"{config.weight_decay}, {config.steps} steps of batch {config.batch_size}; the accuracy "
        "is the final step's. Train seconds exclude evaluation.",
        "",
        f"Command: `{command}`",
        "",
        "Machine: " + "; ".join(sorted({f"{r['machine']} ({r['device']})" for r in records})),
        "",
    ]
    return "\n".join(lines)


def format_accuracy(mean: float, std: float | None) -> str:
    """``"93.1 ± 0.4%"``; ``"93.1% (± n/a, one seed)"`` when there is no standard deviation."""
    if std is None:
        return f"{100 * mean:.1f}% (± n/a, one seed)"
    return f"{100 * mean:.1f} ± {100 * std:.1f}%"


def _mean_curve(runs: Sequence[dict]) -> list[float]:
    curves = (run["shift_accuracy"] for run in runs)
    return [statistics.fmean(values) for values in zip(*curves, strict=True)]


def machine() -> str:
    """One line naming the processor, the accelerator if any, and the software versions."""
    parts = [_cpu_name(), f"{os.cpu_count()} CPU cores"]
    if torch.cuda.is_available():
        parts.append(torch.cuda.get_device_name(0))
    parts += [f"Python {platform.python_version()}", f"torch {torch.__version__}"]
    return ", ".join(parts)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError as error:
        raise ImportError(
            "progress bars need tqdm: pip install 'locality[train]' (or --no-progress)"
        ) from error
    return tqdm(total=total, initial=initial, desc="runs", unit="run", dynamic_ncols=True)


def _plot(name: str, rows: Sequence[dict], records: Sequence[dict], out: Path) -> None:
    try:
        from locality.train import plots
    except ImportError as error:
        print(
            f"experiment: skipping plots ({error}); pip install 'locality[plot]'", file=sys.stderr
        )
        return
    plots.accuracy_vs_parameters(rows, PUBLISHED, PUBLISHED_PARAMETERS).savefig(
        out / f"{name}_accuracy_vs_parameters.png", dpi=120
    )
    plots.accuracy_vs_shift(records).savefig(out / f"{name}_accuracy_vs_shift.png", dpi=120)
