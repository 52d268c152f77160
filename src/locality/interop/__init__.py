"""Moving models and weights between locality and other libraries (Keras 2)."""

from locality.interop.keras import (
    count_keras_parameters,
    export_keras_weights,
    keras_kernel_shape,
    keras_output_size,
    load_keras_weights,
    load_model,
    model_from_config,
    read_keras_h5,
    save_model,
)

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
]
