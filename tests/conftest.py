import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))


def pytest_terminal_summary(terminalreporter):
    """Say which x86 int8 kernels this run's int8 tests went through: onnxruntime's integer
    matmuls differ by CPU (u8·s8 saturates without VNNI), so a green run covers its CPU's path."""
    from leanformer.measure import cpu_flags, cpu_name, int8_path

    terminalreporter.write_line(
        f"int8 tests ran on: {cpu_name()} (flags: {' '.join(cpu_flags()) or 'none'}; onnxruntime u8·s8 path: {int8_path()})")
