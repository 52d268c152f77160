"""Moving weights between locality layers and other libraries' layers."""

from locality.interop.keras import (
    from_keras_weights,
    keras_kernel_shape,
    keras_output_size,
    read_keras_h5,
    to_keras_weights,
)

__all__ = [
    "from_keras_weights",
    "to_keras_weights",
    "keras_kernel_shape",
    "keras_output_size",
    "read_keras_h5",
]
