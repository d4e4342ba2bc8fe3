"""Measuring models: parameters by kind, bytes on disk, analytic FLOPs, CPU latency, result tables.

Each submodule's docstring states its counting rules:
- `parameters`: `count_parameters`, `linear_parameters`, `total_parameters`, `bytes_on_disk`
- `flops`: `flops_per_token`
- `latency`: `measure_latency`, `compare_latency`, `latency_of_model`, `time_call_ms`, `dummy_inputs`, `cpu_name`,
  `cpu_flags`, `int8_path`, `device_name`
- `results`: `BenchmarkRow`, `write_results`, `read_results`, `merge_results`, `markdown_table`, `render_benchmark`
"""

from .flops import attention_matmul_flops, flops_per_token
from .latency import (
    LatencyResult,
    compare_latency,
    cpu_flags,
    cpu_name,
    device_name,
    dummy_inputs,
    forward_callable,
    int8_path,
    latency_of_model,
    measure_latency,
    time_call_ms,
)
from .parameters import (
    KINDS,
    bytes_on_disk,
    count_parameters,
    linear_parameters,
    total_parameters,
    weight_files,
)
from .results import (
    TEACHER_METHOD,
    BenchmarkRow,
    machine_of,
    markdown_table,
    merge_results,
    read_results,
    render_benchmark,
    write_results,
)

__all__ = [
    "KINDS",
    "TEACHER_METHOD",
    "BenchmarkRow",
    "LatencyResult",
    "attention_matmul_flops",
    "bytes_on_disk",
    "compare_latency",
    "cpu_flags",
    "cpu_name",
    "device_name",
    "count_parameters",
    "dummy_inputs",
    "flops_per_token",
    "forward_callable",
    "int8_path",
    "latency_of_model",
    "linear_parameters",
    "machine_of",
    "markdown_table",
    "merge_results",
    "measure_latency",
    "read_results",
    "render_benchmark",
    "time_call_ms",
    "total_parameters",
    "weight_files",
    "write_results",
]
