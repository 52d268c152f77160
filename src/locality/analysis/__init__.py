"""Accounting: parameters, multiply-accumulates, memory and receptive fields of layers and models.

- ``counts``: closed forms from shapes alone (exact Python ints);
- ``summary``: a per-layer table of a real model;
- ``receptive_field``: where each output unit looks;
- ``sharing``: how shared an unshared layer is (weight SNR, spectrum across positions).
"""

from locality.analysis.counts import (
    Cost,
    conv_cost,
    dense_cost,
    depthwise_separable_cost,
    format_bytes,
    format_count,
    locally_connected_cost,
    lowrank_cost,
    region_cost,
    tiled_cost,
)
from locality.analysis.layers import kind_of, layer_cost
from locality.analysis.receptive_field import ReceptiveField, receptive_field
from locality.analysis.sharing import (
    SharingRow,
    Spectrum,
    interior_positions,
    kernel_spectrum,
    position_kernels,
    sharing_report,
    weight_snr,
)
from locality.analysis.summary import LayerRow, Summary, summary

__all__ = [
    "Cost",
    "dense_cost",
    "locally_connected_cost",
    "tiled_cost",
    "conv_cost",
    "region_cost",
    "lowrank_cost",
    "depthwise_separable_cost",
    "format_count",
    "format_bytes",
    "kind_of",
    "layer_cost",
    "ReceptiveField",
    "receptive_field",
    "LayerRow",
    "Summary",
    "summary",
    "Spectrum",
    "interior_positions",
    "kernel_spectrum",
    "position_kernels",
    "weight_snr",
    "SharingRow",
    "sharing_report",
]
