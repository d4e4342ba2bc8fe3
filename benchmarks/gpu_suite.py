"""One GPU, under 10 minutes: the MPNet (BERT-base size) teacher on SST-2 and every method and
composition from it, trained in bf16 mixed precision, with rows that record the GPU.

    benchmarks/gpu_suite.sh          # on a machine with a CUDA GPU: rows into benchmarks/results/gpu_suite.json
    benchmarks/gpu_suite.sh --dry    # anywhere: the same pipeline on a tiny 4-layer MPNet, 32 examples, on the CPU

It is `leanformer demo` (teacher → each method's student → each composition under the method that
deploys last → one interleaved benchmark) with a GPU's budget: 20,000 SST-2 training examples, one
teacher epoch and one student epoch each, bf16, and the PyTorch models timed on the GPU (CUDA
events); int8 students run as ONNX on the host CPU, as deployed. The budget is in each row's label
(`extra["budget"]`). `--dry` builds a tiny MPNet with MiniLM's packaged tokenizer, trains it on the
CPU in bf16 (the same code path), writes under --output_dir and never into benchmarks/results/.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

BUDGET = dict(train_samples=20_000, epochs=1.0, student_epochs=1.0, batch_size=32, max_length=64, repeats=5)
DRY_BUDGET = dict(train_samples=32, epochs=1.0, student_epochs=1.0, batch_size=8, max_length=16, repeats=1, max_eval_examples=16)


def tiny_mpnet(directory: Path) -> Path:
    """A random 4-layer MPNet (hidden 32) with MiniLM's packaged word-piece tokenizer: the dry run's teacher to fine-tune."""
    import torch
    import transformers

    from leanformer.pretrained import resolve_model

    tokenizer = transformers.AutoTokenizer.from_pretrained(resolve_model("minilm"))
    config = transformers.MPNetConfig(vocab_size=len(tokenizer), hidden_size=32, num_attention_heads=4, intermediate_size=64,
                                      num_hidden_layers=4, max_position_embeddings=130, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    transformers.MPNetModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="tiny model on the CPU: checks the pipeline, measures nothing")
    parser.add_argument("--output_dir", default=None, help="students and results (default runs/bench/gpu_suite, or a temporary directory with --dry)")
    args = parser.parse_args(argv)

    import torch

    from common import command_line, record_rows
    from leanformer.demo import DemoConfig, run_demo
    from leanformer.measure import read_results

    if not args.dry and not torch.cuda.is_available():
        print("gpu_suite: error: no CUDA device here: run it on a GPU machine, or pass --dry to check the pipeline on the CPU", file=sys.stderr)
        return 2
    scratch = tempfile.TemporaryDirectory(prefix="leanformer-gpu-suite-") if args.dry and args.output_dir is None else None
    out = Path(scratch.name if scratch else args.output_dir or "runs/bench/gpu_suite")
    budget = DRY_BUDGET if args.dry else BUDGET
    if args.dry:  # its teacher is cached beside it, not among the user's teachers
        os.environ["LEANFORMER_CACHE"] = str(out / "cache")
    model = str(tiny_mpnet(out / "tiny-mpnet")) if args.dry else "mpnet"
    config = DemoConfig(model=model, task="glue/sst2", output_dir=str(out / "demo"), precision="bf16",
                        device="cpu" if args.dry else "auto", benchmark_device="cpu" if args.dry else "cuda", progress=not args.dry,
                        **budget)
    table = run_demo(config)
    rows = read_results(out / "demo" / "results.json")
    tag = f"{budget['train_samples']}×{budget['student_epochs']:g} bf16"
    for row in rows:
        row.extra["budget"] = tag
    if args.dry:
        print(f"gpu_suite --dry: {len(rows)} rows, methods {', '.join(r.model for r in rows)}")
    else:
        record_rows(rows, HERE / "results" / "gpu_suite.json", HERE / "gpu_suite.md",
                    title="One GPU: MPNet-base on SST-2, every method (bf16 training)", command=command_line())
    print(table)
    if scratch:
        scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
