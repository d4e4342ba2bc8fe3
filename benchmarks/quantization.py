"""Full quantization: QAT vs post-training quantization, fake-quant PyTorch vs real int8 onnxruntime.

    .venv/bin/python benchmarks/quantization.py [--parts classification translation] [--repeats 10]

Classification (MiniLM-L6 on SST-2, the cached teacher of benchmarks/teacher.py): fp32 teacher,
8-bit QAT (distilled), 8-bit PTQ (calibration only), QAT with 7-bit weights, onnxruntime's own
`quantize_dynamic` of the fp32 ONNX file (plain and `reduce_range`); the 8-bit QAT student also
exported for VNNI CPUs (`kernels="vnni"`: int8 weights, saturating on CPUs without VNNI); accuracy
of each as deployed, size of the deployed file, latency b1/b32 (seq 128), interleaved in one run.
Rows record the CPU, its int8 flags and onnxruntime's u8·s8 path there (`int8_path`).

Translation (bible_en_fr, a Marian model trained from scratch: `leanformer finetune --model
scratch`, settings below): greedy BLEU of the fp32 teacher and of QAT and PTQ students at 8, 6
and 4 bits; beam-4 BLEU of the teacher and of the `--beam_students` (8-bit QAT by default); greedy
BLEU of the int8 ONNX model (encoder + cached decoder in onnxruntime); size; generation latency
(32 new tokens, b1/b32) of PyTorch fp32, ONNX fp32 and ONNX int8.

Students are kept under runs/bench/quantization/; finished students are reused: re-run freely.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer

import leanformer
from leanformer.distill import DistillationConfig
from leanformer.evaluation import evaluate_model
from leanformer.deploy.encoder import OnnxClassifier, export_onnx
from leanformer.measure import BenchmarkRow, compare_latency, count_parameters, cpu_flags, cpu_name, dummy_inputs, int8_path
from leanformer.methods.quantization import QuantizationConfig, export_int8_onnx, export_int8_seq2seq
from leanformer.deploy.seq2seq import OnnxSeq2Seq, export_seq2seq_onnx
from leanformer.student import distil_student
from leanformer.data import TaskConfig
from leanformer.teacher import FinetuneConfig, finetune, teacher_metrics
from leanformer.training import TrainConfig
from leanformer.translation_teacher import ScratchTranslationConfig

sys.path.insert(0, str(Path(__file__).parent))
from common import command_line, generation_latency, record_rows  # noqa: E402
from teacher import teacher_settings  # noqa: E402  (same teachers as benchmarks/teacher.md)

HERE = Path(__file__).parent
RUNS = Path("runs/bench/quantization")
CPU = cpu_name()

# The translation teacher (about 2 h 20 min on 2 CPU cores; cached after the first run):
#   leanformer finetune --task bible_en_fr --model scratch --epochs 16 --batch_size 64 \
#       --learning_rate 7e-4 --warmup_ratio 0.06 --max_length 128 --eval_batch_size 128
TRANSLATION_TEACHER = dict(epochs=16.0, batch_size=64, learning_rate=7e-4, warmup_ratio=0.06, max_length=128, eval_batch_size=128)


def _student(teacher: Path, config: QuantizationConfig, task, train: TrainConfig, out: Path) -> Path:
    if not (out / "leanformer_metrics.json").is_file():
        print(f"== {out.name}", flush=True)
        distil_student(teacher, config, task, train, DistillationConfig(), out, overwrite=True, resume=True)
    return out


def _row(label, method, task, metric_name, metric, teacher_metric, params, teacher_params, size, teacher_size,
         lat, teacher_lat, command, **extra) -> BenchmarkRow:
    extra = {"cpu": CPU, "cpu_flags": cpu_flags(), "int8_path": int8_path(), **extra}
    return BenchmarkRow(
        model=label, method=method, task=task, metric_name=metric_name, metric=metric, teacher_metric=teacher_metric,
        params=params, teacher_params=teacher_params, bytes=size, teacher_bytes=teacher_size,
        latency_b1_ms=lat[0], latency_b32_ms=lat[1], teacher_latency_b1_ms=teacher_lat[0], teacher_latency_b32_ms=teacher_lat[1],
        flops_per_token=None, teacher_flops_per_token=None, command=command, extra=extra,
    )


def _saved(path: Path, evaluate) -> dict:
    if not path.is_file():
        path.write_text(json.dumps(evaluate()))
    return json.loads(path.read_text())


def classification(args, command: str) -> list[BenchmarkRow]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    name = "glue/sst2"
    teacher_path = finetune(FinetuneConfig(model="minilm"), *teacher_settings(name))
    record = teacher_metrics(teacher_path)
    task = TaskConfig(task=name, max_train_samples=8000).load(seed=0)
    common = dict(max_length=128, batch_size=32, report_to="none", logging_steps=50)
    qat = _student(teacher_path, QuantizationConfig(), task, TrainConfig(epochs=1.0, learning_rate=2e-5, **common), RUNS / "sst2-qat8")
    ptq = _student(teacher_path, QuantizationConfig(calibration_batches=16), task, TrainConfig(epochs=0.0, **common), RUNS / "sst2-ptq8")
    # 7-bit weights (onnxruntime's reduce_range), trained on that grid: int8 storage cannot saturate u8·s8 pairs
    qat7w = _student(teacher_path, QuantizationConfig(weight_bits=7), task, TrainConfig(epochs=1.0, learning_rate=2e-5, **common), RUNS / "sst2-qat7w")
    if args.train_only:
        return []

    onnx_dir = RUNS / "sst2-onnx"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    teacher = leanformer.load(teacher_path)
    files = {"fp32": export_onnx(teacher, onnx_dir / "fp32.onnx")}
    quantize_dynamic(str(files["fp32"]), str(onnx_dir / "dynamic.onnx"), weight_type=QuantType.QInt8)
    files["dynamic"] = onnx_dir / "dynamic.onnx"
    # onnxruntime's documented remedy on CPUs without VNNI: 7-bit weights
    quantize_dynamic(str(files["fp32"]), str(onnx_dir / "dynamic-reduce_range.onnx"), weight_type=QuantType.QInt8, reduce_range=True)
    files["dynamic reduce_range"] = onnx_dir / "dynamic-reduce_range.onnx"
    files["qat8"] = export_int8_onnx(leanformer.load(qat), onnx_dir / "qat8.onnx")
    files["qat8 vnni"] = export_int8_onnx(leanformer.load(qat), onnx_dir / "qat8-vnni.onnx", kernels="vnni")
    files["qat7w"] = export_int8_onnx(leanformer.load(qat7w), onnx_dir / "qat7w.onnx")
    files["ptq8"] = export_int8_onnx(leanformer.load(ptq), onnx_dir / "ptq8.onnx")
    runners = {"pytorch fp32": teacher, **{k: OnnxClassifier(p, threads=2, spinning=False) for k, p in files.items()}}
    tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    accuracy = {"pytorch fp32": record["metrics"]["test"]["accuracy"]}
    for label, runner in runners.items():
        if label not in accuracy:
            accuracy[label] = evaluate_model(runner, tokenizer, task, "test", max_length=128, progress=False)["accuracy"]
    fake = {key: json.loads((path / "leanformer_metrics.json").read_text())["metrics"]["test"]["accuracy"]
            for key, path in (("qat8", qat), ("qat8 vnni", qat), ("qat7w", qat7w), ("ptq8", ptq))}

    latency = {}
    for b in (1, 32):
        inputs = dummy_inputs(teacher, b, 128)
        fns = {label: (lambda r=runner: r(**inputs)) for label, runner in runners.items()}
        with torch.inference_mode():
            latency[b] = compare_latency(fns, repeats=args.repeats if b == 32 else 3 * args.repeats, threads=2, progress=False)
    params = count_parameters(teacher)["total"]
    sizes = {"pytorch fp32": (teacher_path / "model.safetensors").stat().st_size, **{k: p.stat().st_size for k, p in files.items()}}
    lat = {k: (latency[1][k].median_ms, latency[32][k].median_ms) for k in runners}
    described = {
        "pytorch fp32": ("teacher (PyTorch fp32)", "teacher"),
        "fp32": ("teacher, ONNX fp32", "onnxruntime fp32"),
        "dynamic": ("teacher, onnxruntime quantize_dynamic int8", "ort dynamic int8"),
        "dynamic reduce_range": ("teacher, onnxruntime quantize_dynamic int8, reduce_range (7-bit weights)", "ort dynamic int8"),
        "ptq8": ("8-bit PTQ, ONNX int8", "quantization (PTQ)"),
        "qat8": ("8-bit QAT, ONNX int8", "quantization (QAT)"),
        "qat8 vnni": ("8-bit QAT, ONNX int8, --int8_kernels vnni (int8 weights)", "quantization (QAT)"),
        "qat7w": ("QAT 7-bit weights / 8-bit activations, ONNX int8", "quantization (QAT)"),
    }
    kernels = {"ptq8": "any", "qat8": "any", "qat8 vnni": "vnni", "qat7w": "any"}
    return [
        _row(label, method, name, "accuracy", accuracy[key], accuracy["pytorch fp32"], params, params, sizes[key],
             sizes["pytorch fp32"], lat[key], lat["pytorch fp32"], command, runtime=key,
             **({"fake_quant_accuracy": fake[key], "int8_kernels": kernels[key]} if key in fake else {}))
        for key, (label, method) in described.items()
    ]


def translation_teacher() -> Path:
    """The Bible EN→FR Marian teacher, trained from scratch once and cached (settings above)."""
    return finetune(FinetuneConfig(model="scratch"), TaskConfig(task="bible_en_fr"), TrainConfig(**TRANSLATION_TEACHER), scratch=ScratchTranslationConfig())


def translation(args, command: str) -> list[BenchmarkRow]:
    task_cfg = TaskConfig(task="bible_en_fr")
    teacher_path = translation_teacher()
    record = teacher_metrics(teacher_path)
    task = task_cfg.load(seed=0)
    tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    common = dict(max_length=128, batch_size=64, eval_batch_size=128, report_to="none", logging_steps=50)
    students = {}
    for bits in args.bits:
        students[f"qat{bits}"] = _student(teacher_path, QuantizationConfig.fullyqt(bits), task,
                                          TrainConfig(epochs=args.mt_epochs, learning_rate=args.mt_lr, **common), RUNS / f"mt-qat{bits}")
        students[f"ptq{bits}"] = _student(teacher_path, QuantizationConfig.fullyqt(bits, calibration_batches=16), task,
                                          TrainConfig(epochs=0.0, **common), RUNS / f"mt-ptq{bits}")
    if args.train_only:
        return []
    teacher = leanformer.load(teacher_path)

    onnx_dir = RUNS / "mt-onnx"
    fp32_dir = export_seq2seq_onnx(teacher, onnx_dir / "fp32")
    int8_dir = export_int8_seq2seq(leanformer.load(students["qat8"]), onnx_dir / "qat8")
    runners = {"pytorch fp32": teacher, "onnx fp32": OnnxSeq2Seq(fp32_dir, threads=2, spinning=False), "onnx int8": OnnxSeq2Seq(int8_dir, threads=2, spinning=False)}
    # generation latency: a fixed input, exactly 32 new tokens for every backend
    latency = generation_latency(runners, tokenizer, task.splits["test"]["source"][:32], repeats=args.repeats)
    # BLEU evaluations take minutes each (beam 4 of a fake-quant model: ~10): each is saved once measured,
    # so an interrupted run picks up where it stopped
    bleu = {"pytorch fp32": record["metrics"]["test"]["bleu"]}
    for label, graphs in (("onnx fp32", fp32_dir), ("onnx int8", int8_dir)):
        # next to (not inside) the export directories, which a re-export replaces; named by the
        # graphs' digest, so a changed export is evaluated again
        digest = hashlib.sha256(b"".join(f.read_bytes() for f in sorted(graphs.iterdir()) if f.suffix != ".json")).hexdigest()[:12]
        bleu[label] = _saved(onnx_dir / f"{label.replace(' ', '_')}_test_bleu-{digest}.json", lambda r=runners[label]: evaluate_model(
            r, tokenizer, task, "test", batch_size=128, max_length=128, progress=False))["bleu"]
    beam = {"pytorch fp32": record["metrics"]["test_beam4"]["bleu"]}
    for key, path in students.items():
        if key not in args.beam_students:
            continue
        beam[key] = _saved(path / "test_beam4.json", lambda path=path: evaluate_model(
            leanformer.load(path), tokenizer, task, "test", batch_size=128, max_length=128, num_beams=4, progress=False))["bleu"]
    lat = {k: (latency[1][k].median_ms, latency[32][k].median_ms) for k in runners}
    size = {"pytorch fp32": (teacher_path / "model.safetensors").stat().st_size,
            "onnx fp32": sum(f.stat().st_size for f in fp32_dir.iterdir()),  # both graphs and the tensors they share
            "onnx int8": sum(f.stat().st_size for f in int8_dir.iterdir())}
    params = count_parameters(teacher)["total"]
    t_bleu, t_size, t_lat = bleu["pytorch fp32"], size["pytorch fp32"], lat["pytorch fp32"]
    rows = [
        _row("teacher (PyTorch fp32)", "teacher", "bible_en_fr", "bleu", t_bleu, t_bleu, params, params, t_size, t_size, t_lat, t_lat,
             command, secondary_metrics={"beam 4": beam["pytorch fp32"]}, runtime="pytorch fp32"),
        _row("teacher, ONNX fp32 (greedy loop with cache)", "onnxruntime fp32", "bible_en_fr", "bleu", bleu["onnx fp32"], t_bleu,
             params, params, size["onnx fp32"], t_size, lat["onnx fp32"], t_lat, command, runtime="onnx fp32"),
        _row("8-bit QAT, ONNX int8 (greedy loop with cache)", "quantization (QAT)", "bible_en_fr", "bleu", bleu["onnx int8"], t_bleu,
             params, params, size["onnx int8"], t_size, lat["onnx int8"], t_lat, command, runtime="onnx int8"),
    ]
    for key, path in students.items():
        metrics = json.loads((path / "leanformer_metrics.json").read_text())["metrics"]["test"]
        bits, kind = int(key[3:]), key[:3].upper()
        rows.append(_row(f"{bits}-bit {kind} (PyTorch fake-quant)", f"quantization ({kind})", "bible_en_fr", "bleu", metrics["bleu"], t_bleu,
                         params, params, None, t_size, (None, None), t_lat, command, bits=bits,
                         **({"secondary_metrics": {"beam 4": beam[key]}} if key in beam else {}),
                         runtime="pytorch fake-quant"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", nargs="+", default=["classification", "translation"], choices=["classification", "translation"])
    parser.add_argument("--bits", nargs="+", type=int, default=[8, 6, 4])
    parser.add_argument("--mt_epochs", type=float, default=1.0)
    parser.add_argument("--mt_lr", type=float, default=1e-4)
    parser.add_argument("--repeats", type=int, default=10)
    # beam 4 of a fake-quant student over the 1,225 test verses: about an hour of 2-core CPU each
    parser.add_argument("--beam_students", nargs="*", default=["qat8"], help="students (qat8, ptq6, ...) whose beam-4 BLEU is evaluated too")
    parser.add_argument("--train_only", action="store_true", help="train the students and stop (measure later, on a quiet machine)")
    args = parser.parse_args()
    command = command_line()
    for part in args.parts:  # parts run separately add up in the results file
        measured = classification(args, command) if part == "classification" else translation(args, command)
        if not args.train_only:
            record_rows(measured, HERE / "results" / "quantization.json", HERE / "quantization.md",
                        title="Full quantization (test splits; int8 rows run in onnxruntime)", command=command)


if __name__ == "__main__":
    main()
