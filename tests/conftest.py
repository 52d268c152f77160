"""Test-wide settings.

Tests use tiny tensors, for which intra-op threads only add synchronisation; on a loaded 2-core
machine, OpenMP threads spinning against other processes made single tests 30x slower.
"""

import torch

torch.set_num_threads(1)
