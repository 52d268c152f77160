"""The memory guard: available (not installed) memory, summed over what one call allocates, and
sliding_window in batches (issue 13, item 19)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import locality._memory as memory
from locality.convert import sliding_window, to_dense


@pytest.mark.skipif(not Path("/proc/meminfo").is_file(), reason="Linux only")
def test_cpu_memory_is_what_is_available_now():
    fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    available = int(fields["MemAvailable"].split()[0]) * 1024
    total = int(fields["MemTotal"].split()[0]) * 1024
    measured = memory.available_bytes(torch.device("cpu"))
    assert measured is not None and measured < total
    assert abs(measured - available) < 0.05 * total  # read a moment apart


def test_meminfo_parsing_and_fallback(tmp_path):
    (tmp_path / "meminfo").write_text("MemTotal: 2048 kB\nMemAvailable:    1000 kB\n")
    assert memory._meminfo_available(str(tmp_path / "meminfo")) == 1_024_000
    (tmp_path / "old").write_text("MemTotal: 2048 kB\nMemFree: 10 kB\n")
    assert memory._meminfo_available(str(tmp_path / "old")) is None
    assert memory._meminfo_available(str(tmp_path / "none")) is None


def test_tensors_of_one_call_are_summed(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 100)
    memory.check_allocations([((15,), torch.float32)], "cpu", "f")  # 60 bytes fit
    with pytest.raises(ValueError, match=r"f: .* and .* need 120 B \(120 bytes\)"):
        memory.check_allocations([((15,), torch.float32), ((15,), torch.float32)], "cpu", "f")


def test_to_dense_sums_its_weight_and_its_index(monkeypatch):
    conv = nn.Conv2d(2, 3, 3)
    out = (4, 4)
    dense_bytes = 3 * math.prod(out) * 2 * 6 * 6 * 4
    index_bytes = 4 * math.prod(out) * 3 * 2 * 3 * 3 * 8  # (d + 2, *out, O, C, *k) int64
    monkeypatch.setattr(memory, "available_bytes", lambda device: dense_bytes + index_bytes - 1)
    with pytest.raises(ValueError, match="to_dense"):
        to_dense(conv, (2, 6, 6))
    monkeypatch.setattr(memory, "available_bytes", lambda device: dense_bytes + index_bytes)
    to_dense(conv, (2, 6, 6))


def test_sliding_window_is_guarded_and_batches(monkeypatch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    x = torch.randn(2, 1, 11, 10)
    whole = sliding_window(model, x, 6, 1)
    window_bytes = 6 * 6 * 4
    monkeypatch.setattr(memory, "available_bytes", lambda device: 7 * window_bytes)
    monkeypatch.setattr("locality.convert.windows.available_bytes", lambda device: 7 * window_bytes)
    with pytest.raises(ValueError, match="sliding_window: .*pass batch_size=7 or less"):
        sliding_window(model, x, 6, 1)
    for batch_size in (1, 7):
        torch.testing.assert_close(sliding_window(model, x, 6, 1, batch_size=batch_size), whole)
    with pytest.raises(ValueError, match="batch_size"):
        sliding_window(model, x, 6, 1, batch_size=0)
