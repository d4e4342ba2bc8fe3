"""Wall-clock latency on a shared, noisy CPU: warm-up, repeats, median, and interleaved comparison.

Rules:
- Every call runs under `torch.inference_mode()` with `torch.set_num_threads(threads)` for the
  duration of the measurement (restored afterwards; `threads=None` leaves it alone). The default
  of 2 threads is the reference machine (METHODS.md, "Measured on this kind of CPU").
- `warmup` calls are discarded (allocator, oneDNN kernel selection, lazy init); then `repeats`
  calls are timed one by one with `time.perf_counter`; the median is the number to report (robust
  to a neighbour's burst), min and max show the spread.
- `compare_latency` measures several callables in the same run, round-robin: each round calls each
  callable once, in the order given, so slow drift of the machine (thermal, other jobs) hits all
  alike. Speedups are then ratios of medians taken in that one run (teacher included), never of
  numbers from different runs.
- If CUDA is in use, each call is followed by `torch.cuda.synchronize()` so the time covers the work.

`dummy_inputs` builds what a forward needs: random token ids in [min(5, vocab), vocab) (skipping
the special ids at the start of most vocabularies), an all-ones attention mask, all-zero
`token_type_ids` when the config has `type_vocab_size` > 1 and the forward accepts them, and random
`decoder_input_ids` of the same shape for encoder-decoders.
"""

from __future__ import annotations

import inspect
import platform
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import ConfigError


@dataclass
class LatencyResult:
    """Milliseconds per call; `samples_ms` holds every timed repeat in order."""

    median_ms: float
    min_ms: float
    max_ms: float
    samples_ms: list[float] = field(default_factory=list)

    @classmethod
    def from_samples(cls, samples_ms: list[float]) -> "LatencyResult":
        return cls(statistics.median(samples_ms), min(samples_ms), max(samples_ms), list(samples_ms))


def _check_counts(warmup: int, repeats: int) -> None:
    if warmup < 0 or repeats < 1:
        raise ConfigError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")


@contextmanager
def _timing_context(threads: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            yield
    finally:
        torch.set_num_threads(previous)


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def time_call_ms(fn: Callable[[], Any], device: torch.device | str | None = None) -> float:
    """Milliseconds one call of `fn` takes. On a CUDA device, between CUDA events recorded on its
    stream before and after the call (the kernels' time, not the launches'); elsewhere, wall time
    (after synchronising CUDA if it is in use, so queued work is not left uncounted)."""
    if device is not None and torch.device(device).type == "cuda":
        with torch.cuda.device(device):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
    start = time.perf_counter()
    fn()
    _sync()
    return (time.perf_counter() - start) * 1000.0


def measure_latency(
    fn: Callable[[], Any],
    *,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = 2,
    progress: str | None = None,
    device: torch.device | str | None = None,
) -> LatencyResult:
    """Latency of `fn()`: median of `repeats` timed calls after `warmup` discarded ones (timed on
    `device`: see `time_call_ms`)."""
    _check_counts(warmup, repeats)
    samples: list[float] = []
    with _timing_context(threads):
        bar = tqdm(total=warmup + repeats, desc=progress, disable=progress is None, leave=False)
        with bar:
            for _ in range(warmup):
                fn()
                _sync()
                bar.update()
            for _ in range(repeats):
                samples.append(time_call_ms(fn, device))
                bar.update()
    return LatencyResult.from_samples(samples)


def compare_latency(
    fns: dict[str, Callable[[], Any]],
    *,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = 2,
    progress: bool = True,
    devices: dict[str, torch.device | str] | None = None,
) -> dict[str, LatencyResult]:
    """Latency of several callables measured round-robin in one run (one call of each per round);
    `devices[name]` is where callable `name` runs when not on the CPU (see `time_call_ms`)."""
    devices = devices or {}
    _check_counts(warmup, repeats)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    with _timing_context(threads):
        bar = tqdm(total=(warmup + repeats) * len(fns), desc="latency", disable=not progress, leave=False)
        with bar:
            for _ in range(warmup):
                for fn in fns.values():
                    fn()
                    _sync()
                    bar.update()
            for _ in range(repeats):
                for name, fn in fns.items():
                    samples[name].append(time_call_ms(fn, devices.get(name)))
                    bar.update()
    return {name: LatencyResult.from_samples(s) for name, s in samples.items()}


def device_name(device: torch.device | str) -> str | None:
    """The accelerator a row was measured on ("NVIDIA H200 (cuda)"), or None for the CPU (rows
    record the CPU anyway: `cpu_name`)."""
    device = torch.device(device)
    if device.type == "cpu":
        return None
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cuda)"
    return device.type


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), recorded with every measured row: ratios
    measured on one CPU do not carry over to another (oneDNN picks other kernels)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


# x86 flags that decide which int8 matmul kernels onnxruntime runs (and whether u8·s8 can saturate).
INT8_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """The INT8_FLAGS this CPU has (/proc/cpuinfo's first "flags" line; empty elsewhere)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                cpuinfo = f.read()
        except OSError:
            return []
    line = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    present = set(line.split(":", 1)[-1].split())
    return [flag for flag in INT8_FLAGS if flag in present]


def int8_path(flags: list[str] | None = None) -> str:
    """How onnxruntime's x86 kernels multiply uint8 activations by int8 weights on this CPU:
    "amx" / "vnni" (products summed in 32 bits: exact), "avx512-no-vnni" / "avx2" (VPMADDUBSW:
    pairs of products summed in 16 bits, which saturates), or "other" (not x86 with AVX2)."""
    flags = cpu_flags() if flags is None else flags
    if "amx_int8" in flags:
        return "amx"
    if "avx512_vnni" in flags or "avx_vnni" in flags:
        return "vnni"
    if "avx512bw" in flags:
        return "avx512-no-vnni"
    return "avx2" if "avx2" in flags else "other"


def _forward_accepts(model: nn.Module, argument: str) -> bool:
    return argument in inspect.signature(model.forward).parameters


def dummy_inputs(model: nn.Module, batch_size: int, seq_len: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random inputs for a forward of `model` (rules: module docstring), on the model's device."""
    config = model.config
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(seed)
    vocab = config.vocab_size
    low = min(5, vocab - 1)

    def token_ids() -> torch.Tensor:
        return torch.randint(low, vocab, (batch_size, seq_len), generator=generator)

    inputs = {"input_ids": token_ids(), "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long)}
    if getattr(config, "type_vocab_size", 0) > 1 and _forward_accepts(model, "token_type_ids"):
        inputs["token_type_ids"] = torch.zeros(batch_size, seq_len, dtype=torch.long)
    if getattr(config, "is_encoder_decoder", False):
        inputs["decoder_input_ids"] = token_ids()
    return {name: tensor.to(device) for name, tensor in inputs.items()}


def forward_callable(model: nn.Module, batch_size: int, seq_len: int = 128, seed: int = 0) -> Callable[[], Any]:
    """`model(**dummy_inputs(...))` as a no-argument callable, for `measure_latency`/`compare_latency`.

    The model is run as it is: put it in `eval()` first, or dropout is timed too.
    """
    inputs = dummy_inputs(model, batch_size, seq_len, seed)
    return lambda: model(**inputs)


def latency_of_model(model: nn.Module, batch_size: int, seq_len: int = 128, **kwargs: Any) -> LatencyResult:
    """Latency of one forward of `model` on dummy inputs, on the model's device; `kwargs` go to `measure_latency`."""
    device = next((p.device for p in model.parameters()), None)
    return measure_latency(forward_callable(model, batch_size, seq_len), device=device, **kwargs)
