"""Training: datasets, model families, the loop, experiments, and weight sharing during training.

- ``data``: MNIST-1D, the 8x8 digits, .npz files and image folders;
- ``models``: dense, locally connected, tiled and convolutional families of one skeleton;
- ``loop``: the seeded, resumable training loop (``train``, ``train_family``);
- ``experiment``: every family over seeds, one table;
- ``sharing``: restore weight sharing while training (``WeightSharing``, ``share_weights``).
"""

from locality.train.sharing import WeightSharing, share_weights

__all__ = ["WeightSharing", "share_weights"]
