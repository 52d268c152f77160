"""Keras 2 models and layers to PyTorch and back, without TensorFlow.

Whole models (``.h5`` and Keras v3 ``.keras`` files, read with h5py and zipfile only):

- ``load_model(path)``: the ``nn.Module`` computing the Keras model's function, channels first.
- ``save_model(model, path, input_shape=...)``: a ``Sequential`` of supported layers as a
  Keras 2 ``.h5`` file that ``tf.keras.models.load_model`` reads.
- ``model_from_config(config)`` and ``count_keras_parameters(config)``: the architecture alone.

One locally connected layer's arrays (Keras 2's ``LocallyConnected1D/2D``, all three
``implementation`` layouts, both data formats):

- ``load_keras_weights(layer, kernel, bias)`` and ``export_keras_weights(layer)``;
- ``keras_kernel_shape(...)``, ``keras_output_size(...)`` and ``read_keras_h5(path, name)``.

Keras 3 dropped ``LocallyConnected1D/2D``; these functions read the files Keras 2 wrote.
"""

from locality.interop.keras_export import save_model
from locality.interop.keras_file import read_keras_h5
from locality.interop.keras_layers import SUPPORTED_LAYERS
from locality.interop.keras_locally_connected import (
    export_keras_weights,
    keras_kernel_shape,
    keras_output_size,
    load_keras_weights,
)
from locality.interop.keras_model import count_keras_parameters, load_model, model_from_config

__all__ = [
    "load_model",
    "save_model",
    "model_from_config",
    "count_keras_parameters",
    "load_keras_weights",
    "export_keras_weights",
    "keras_kernel_shape",
    "keras_output_size",
    "read_keras_h5",
    "SUPPORTED_LAYERS",
]
