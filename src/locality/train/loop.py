"""The training loop: seeded, step-based, resumable bit for bit, the same on one process or many.

Training runs for a fixed number of optimiser steps (as the MNIST-1D benchmark does), each on a
global batch of ``batch_size`` examples. The order of examples comes from
``torch.utils.data.DistributedSampler`` seeded with the run's seed and reshuffled every epoch; with
``W`` processes each takes every ``W``-th index, so the union of the local batches at a step is the
single-process batch at that step, and DDP's gradient average is the single-process gradient.

The batch at a step depends only on the seed and the step, and the checkpoint holds the model,
the optimiser and the RNG state, so a resumed run continues exactly as an uninterrupted one would.

A run directory holds ``checkpoint.pt`` (``state_dict``s and the step), ``metrics.csv`` (one row
per evaluation) and ``metrics.json`` (the configuration, the final numbers and the same rows).
Each is written to a temporary name and renamed, so a killed run leaves whole files. A fresh run
refuses a directory that holds an earlier one unless told to ``resume`` or ``overwrite`` it, and
a checkpoint records the dataset (name, shapes and a digest of its tensors) and the model (its
name, class and parameter shapes), so resuming with another dataset or model is refused, naming
both.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler

from locality._atomic import write_atomically, write_text_atomically
from locality.train import distributed
from locality.train.data import Data
from locality.train.distributed import Context
from locality.train.models import build_model, count_parameters, model_name

CHECKPOINT = "checkpoint.pt"
METRICS_CSV = "metrics.csv"
METRICS_JSON = "metrics.json"
COLUMNS = ("step", "epoch", "train_loss", "test_loss", "test_accuracy", "train_seconds")
RUN_FILES = (CHECKPOINT, METRICS_CSV, METRICS_JSON)
# More classes than this is a labelling mistake (labels such as {0, 10^7}), not a classifier.
MAX_CLASSES = 100_000


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; the defaults are the MNIST-1D benchmark's (Adam, lr 1e-2, 6000
    steps of 100 examples, no weight decay).

    Attributes:
        steps: optimiser steps in total.
        batch_size: global batch, split evenly over processes.
        lr: Adam learning rate.
        weight_decay: Adam (L2) weight decay.
        seed: seeds the model's initialisation (in :func:`train_family`) and the batch order.
        eval_every: steps between evaluations on the test set (the last step is always evaluated).
        checkpoint_every: steps between checkpoints when a run directory is given (0: only at the
            end).
    """

    steps: int = 6000
    batch_size: int = 100
    lr: float = 1e-2
    weight_decay: float = 0.0
    seed: int = 0
    eval_every: int = 500
    checkpoint_every: int = 1000

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig: {name} must be a positive int, got {value!r}")
        for name in ("seed", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"TrainConfig: {name} must be a non-negative int, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"TrainConfig: lr must be a positive number, got {self.lr!r}")
        if not (
            isinstance(self.weight_decay, (int, float))
            and math.isfinite(self.weight_decay)
            and self.weight_decay >= 0
        ):
            raise ValueError(
                f"TrainConfig: weight_decay must be a finite number >= 0, got {self.weight_decay!r}"
            )


@dataclass
class RunResult:
    """What a run produced: the final test accuracy, the evaluation rows, size and time."""

    model: str
    dataset: str
    seed: int
    parameters: int
    steps: int
    test_accuracy: float
    train_seconds: float
    history: list[dict] = field(default_factory=list)


def train_family(
    family: str,
    data: Data,
    config: TrainConfig,
    *,
    tile_size: int | None = None,
    regions: int | None = None,
    rank: int | None = None,
    run_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    fsdp: bool = False,
) -> tuple[nn.Module, RunResult]:
    """Seed, build one family's model for ``data`` (see :func:`~locality.train.models.build_model`)
    and :func:`train` it. Returns the trained (unwrapped) model and its result."""
    check_data(data)
    check_run_dir(run_dir, resume=resume, overwrite=overwrite)
    torch.manual_seed(config.seed)
    model = build_model(
        family, data.input_shape, data.num_classes, tile_size=tile_size, regions=regions, rank=rank
    )
    result = train(
        model,
        data,
        config,
        name=model_name(family, tile_size, regions, rank),
        run_dir=run_dir,
        resume=resume,
        overwrite=overwrite,
        device=device,
        progress=progress,
        fsdp=fsdp,
    )
    return model, result


def train(
    model: nn.Module,
    data: Data,
    config: TrainConfig,
    *,
    name: str = "model",
    run_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    after_step: Callable[[int], object] | None = None,
    fsdp: bool = False,
) -> RunResult:
    """Train ``model`` (logits ``(N, classes)`` from inputs ``(N, *data.input_shape)``) in place.

    In a process group (``torchrun``, or one the caller initialised) the model is wrapped in
    ``DistributedDataParallel`` and each process takes its share of every global batch; rank 0
    writes the run directory and shows the progress bar.

    Args:
        model: the model, initialised (seed before building it for reproducibility).
        data: the dataset; it is moved to the device whole.
        config: optimisation settings.
        name: the model's name in the metrics.
        run_dir: where checkpoints and metrics go; ``None`` keeps everything in memory.
        resume: continue from ``run_dir/checkpoint.pt`` if it exists (its configuration, dataset
            and model must match, except ``steps``, which may grow).
        overwrite: start afresh in a ``run_dir`` that holds an earlier run, replacing its files;
            without ``resume`` or ``overwrite`` such a directory is refused.
        device: ``"auto"`` (default), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        progress: show a tqdm progress bar.
        after_step: called with the step number (from 1) after each optimiser step, e.g. a
            :class:`~locality.train.WeightSharing`; its time counts as training time.
        fsdp: in a process group, shard parameters, gradients and optimiser state with FSDP2
            (:func:`~locality.train.distributed.wrap_model`) instead of DDP; the checkpoint
            holds the gathered whole state. Cannot resume (yet).
    """
    check_data(data)
    check_run_dir(run_dir, resume=resume, overwrite=overwrite)
    context = distributed.current(device)
    if fsdp and resume:
        raise ValueError("train: fsdp=True cannot resume from a checkpoint; train without resume")
    if config.batch_size % context.world_size:
        raise ValueError(
            f"train: batch_size ({config.batch_size}) must be divisible by the number of "
            f"processes ({context.world_size})"
        )
    if resume and run_dir is None:
        raise ValueError("train: resume=True needs a run_dir to resume from")
    local_batch = config.batch_size // context.world_size
    sampler: DistributedSampler[int] = DistributedSampler(
        range(len(data.y_train)),  # type: ignore[arg-type]  # any sized sequence works
        num_replicas=context.world_size,
        rank=context.rank,
        shuffle=True,
        seed=config.seed,
        drop_last=True,
    )
    steps_per_epoch = len(sampler) // local_batch
    if steps_per_epoch == 0:
        raise ValueError(
            f"train: batch_size ({config.batch_size}) is larger than the training set "
            f"({len(data.y_train)} examples)"
        )

    if run_dir is not None and context.is_main:
        try:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(
                f"train: cannot create the run directory {str(run_dir)!r} ({error.strerror})"
            ) from None
    model.to(context.device)
    x_train, y_train = data.x_train.to(context.device), data.y_train.to(context.device)
    x_test, y_test = data.x_test.to(context.device), data.y_test.to(context.device)
    # FSDP2 replaces the parameters by shards: the optimiser must be built on those.
    sharded = distributed.wrap_model(model, context, shard=True) if fsdp else None
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    run_path = Path(run_dir) if run_dir is not None else None
    identity = run_identity(model, data, name)
    history: list[dict] = []
    start, train_seconds = 0, 0.0
    if resume and run_path is not None and (run_path / CHECKPOINT).is_file():
        start, history, train_seconds = _load_checkpoint(
            run_path / CHECKPOINT, model, optimizer, config, identity, context
        )
    elif overwrite and run_path is not None and context.is_main:
        for old in RUN_FILES:
            (run_path / old).unlink(missing_ok=True)
    if not distributed.agree(start, context):
        raise ValueError(
            "train: the processes found different checkpoints to resume from (this one: step "
            f"{start}); run_dir must be a folder that every process sees"
        )
    parallel = sharded if sharded is not None else distributed.wrap_model(model, context)

    bar = _progress_bar(config.steps, start, name, enabled=progress and context.is_main)
    window_loss, window_steps = 0.0, 0
    test_loss, test_accuracy = (
        (history[-1]["test_loss"], history[-1]["test_accuracy"])
        if history
        else (math.nan, math.nan)
    )
    batches = _batches(sampler, steps_per_epoch, local_batch, start)
    for step in range(start + 1, config.steps + 1):
        tick = time.perf_counter()
        parallel.train()
        index = next(batches).to(context.device)
        loss = F.cross_entropy(parallel(x_train[index]), y_train[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step(step)
        window_loss += loss.item()
        window_steps += 1
        train_seconds += time.perf_counter() - tick

        if step % config.eval_every == 0 or step == config.steps:
            test_loss, test_accuracy = evaluate(model, x_test, y_test)
            history.append(
                {
                    "step": step,
                    "epoch": (step - 1) // steps_per_epoch,
                    "train_loss": distributed.mean_over_ranks(window_loss / window_steps, context),
                    "test_loss": test_loss,
                    "test_accuracy": test_accuracy,
                    "train_seconds": train_seconds,
                }
            )
            window_loss, window_steps = 0.0, 0
            if bar is not None:
                bar.set_postfix(
                    loss=f"{history[-1]['train_loss']:.3f}", test_acc=f"{test_accuracy:.3f}"
                )
        if (
            run_path is not None
            and (context.is_main or sharded is not None)  # gathering shards takes every rank
            and (
                step == config.steps
                or (config.checkpoint_every and step % config.checkpoint_every == 0)
            )
        ):
            _save_checkpoint(
                run_path / CHECKPOINT,
                model,
                optimizer,
                config,
                identity,
                step,
                history,
                train_seconds,
                write=context.is_main,
            )
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()

    result = RunResult(
        model=name,
        dataset=data.name,
        seed=config.seed,
        parameters=count_parameters(model),
        steps=config.steps,
        test_accuracy=test_accuracy,
        train_seconds=train_seconds,
        history=history,
    )
    if run_path is not None and context.is_main:
        write_metrics(run_path, result, config, context)
    return result


def check_run_dir(
    run_dir: str | os.PathLike | None, *, resume: bool = False, overwrite: bool = False
) -> None:
    """Refuse a fresh run into a directory that holds an earlier run, before any work.

    Raises ValueError naming the directory and its run files unless ``resume`` (continue it) or
    ``overwrite`` (replace it) is given; the two exclude each other.
    """
    if resume and overwrite:
        raise ValueError("train: resume and overwrite exclude each other; pass one of them")
    if run_dir is None:
        return
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"train: run_dir {str(path)!r} is a file; expected a folder")
    found = [name for name in RUN_FILES if (path / name).exists()]
    if found and not (resume or overwrite):
        raise ValueError(
            f"train: {str(path)!r} already holds a run ({', '.join(found)}); pass resume=True "
            f"(--resume) to continue it or overwrite=True (--overwrite) to replace it"
        )


def check_data(data: Data) -> None:
    """Refuse data a run cannot learn from or evaluate on, before any work.

    Empty training or test sets, non-finite inputs, labels outside ``[0, num_classes)`` and more
    classes than :data:`MAX_CLASSES` or than there are examples raise ValueError naming the
    dataset and what is wrong.
    """
    where = f"train: dataset {data.name!r}"
    for split, x, y in (
        ("training", data.x_train, data.y_train),
        ("test", data.x_test, data.y_test),
    ):
        if len(y) == 0:
            raise ValueError(
                f"{where}: the {split} set is empty (inputs {tuple(x.shape)}); a split needs at "
                f"least one example"
            )
        if not torch.is_floating_point(x) or not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x)).sum()) if torch.is_floating_point(x) else 0
            raise ValueError(
                f"{where}: the {split} inputs must be finite floats; got dtype {x.dtype} with "
                f"{bad:,} NaN or infinite values"
            )
        if int(y.min()) < 0 or int(y.max()) >= data.num_classes:
            raise ValueError(
                f"{where}: the {split} labels must be in [0, {data.num_classes}), got "
                f"[{int(y.min())}, {int(y.max())}]"
            )
    examples = len(data.y_train) + len(data.y_test)
    if data.num_classes > min(MAX_CLASSES, examples):
        raise ValueError(
            f"{where}: labels run up to {data.num_classes - 1:,}, i.e. {data.num_classes:,} "
            f"classes for {examples:,} examples; labels must be 0 .. K-1 for K classes "
            f"(at most {MAX_CLASSES:,} and no more than the examples)"
        )


def run_identity(model: nn.Module, data: Data, name: str) -> dict:
    """What a checkpoint must match to be resumed: the dataset and the model, described."""
    digest = hashlib.sha256()
    for tensor in (data.x_train, data.y_train, data.x_test, data.y_test):
        digest.update(str((tensor.dtype, tuple(tensor.shape))).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return {
        "dataset": data.name,
        "dataset_shape": [len(data.y_train), len(data.y_test), *data.input_shape],
        "num_classes": data.num_classes,
        "dataset_sha256": digest.hexdigest(),
        "model": name,
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "parameter_shapes": {k: list(v.shape) for k, v in model.state_dict().items()},
    }


def _batches(
    sampler: DistributedSampler, steps_per_epoch: int, local_batch: int, start: int
) -> Iterator[torch.Tensor]:
    """This process's batch indices for steps ``start + 1``, ``start + 2``, ...; partial batches at
    the end of an epoch are dropped so that every step has the same batch size."""
    epoch, offset = divmod(start, steps_per_epoch)
    while True:
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler))
        for i in range(offset, steps_per_epoch):
            yield order[i * local_batch : (i + 1) * local_batch]
        epoch, offset = epoch + 1, 0


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on inputs ``x`` ``(N, ...)``, labels ``y``."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for i in range(0, len(y), batch_size):
        logits = model(x[i : i + batch_size])
        total_loss += F.cross_entropy(logits, y[i : i + batch_size], reduction="sum").item()
        correct += (logits.argmax(-1) == y[i : i + batch_size]).sum().item()
    model.train(was_training)
    return total_loss / len(y), correct / len(y)


def _progress_bar(total: int, initial: int, name: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError as error:
        raise ImportError(
            "progress bars need tqdm: pip install 'locality[train]' (or pass progress=False / "
            "--no-progress)"
        ) from error
    return tqdm(total=total, initial=initial, desc=name, unit="step", dynamic_ncols=True)


def _comparable(config: TrainConfig) -> dict:
    """The settings a resumed run must share with its checkpoint (``steps`` may grow)."""
    settings = asdict(config)
    del settings["steps"], settings["eval_every"], settings["checkpoint_every"]
    return settings


def _save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    identity: dict,
    step: int,
    history: list[dict],
    train_seconds: float,
    write: bool = True,
) -> None:
    model_state, optimizer_state = distributed.full_state(model, optimizer)
    if not write:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "run": identity,
        "step": step,
        "model": model_state,
        "optimizer": optimizer_state,
        "config": asdict(config),
        "history": history,
        "train_seconds": train_seconds,
        "torch_rng": torch.get_rng_state(),
    }
    write_atomically(path, lambda file: torch.save(state, file))


def _load_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    identity: dict,
    context: Context,
) -> tuple[int, list[dict], float]:
    try:
        state = torch.load(path, map_location=context.device, weights_only=True)
        saved_config = TrainConfig(**state["config"])
        step, history = int(state["step"]), list(state["history"])
        train_seconds = float(state["train_seconds"])
    except Exception as error:  # torch.load's complaint, whatever its type: name the file
        raise ValueError(
            f"train: cannot read the checkpoint {str(path)!r} ({type(error).__name__}: {error}); "
            f"it is damaged or not a locality checkpoint: delete it or pass --overwrite"
        ) from error
    saved_run = state.get("run")
    if not isinstance(saved_run, dict):
        raise ValueError(
            f"train: the checkpoint {str(path)!r} does not record its dataset and model (written "
            f"by an older locality), so resuming it cannot be checked; pass --overwrite to start "
            f"afresh"
        )
    keys = [k for k in identity if k != "parameter_shapes"] + ["parameter_shapes"]
    different = [k for k in keys if saved_run.get(k) != identity[k]]
    if different:
        key = different[0]
        listed = ", ".join(
            f"{k}: checkpoint {_short(saved_run.get(k))}, now {_short(identity[k])}"
            for k in different
            if k != "parameter_shapes" or len(different) == 1
        )
        raise ValueError(
            f"train: cannot resume {str(path)!r} with another "
            f"{'dataset' if key.startswith(('dataset', 'num_classes')) else 'model'} ({listed})"
        )
    saved = _comparable(saved_config)
    differences = {k: (saved[k], v) for k, v in _comparable(config).items() if saved[k] != v}
    if differences:
        listed = ", ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in differences.items())
        raise ValueError(f"train: cannot resume {str(path)!r} with different settings ({listed})")
    if step > config.steps:
        raise ValueError(
            f"train: the checkpoint {str(path)!r} is at step {step}, past steps={config.steps}; "
            f"pass at least --steps {step}"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"].cpu())
    return step, history, train_seconds


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def write_metrics(
    run_dir: str | os.PathLike, result: RunResult, config: TrainConfig, context: Context
) -> None:
    """Write ``metrics.csv`` (one row per evaluation) and ``metrics.json`` (everything)."""
    run_path = Path(run_dir)
    run_path.mkdir(parents=True, exist_ok=True)
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(result.history)
    write_text_atomically(run_path / METRICS_CSV, table.getvalue())
    summary = {
        **asdict(result),
        "config": asdict(config),
        "world_size": context.world_size,
        "device": str(context.device),
        "torch": torch.__version__,
    }
    write_text_atomically(run_path / METRICS_JSON, json.dumps(summary, indent=2) + "\n")
