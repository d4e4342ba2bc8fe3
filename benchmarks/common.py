"""What the method benchmarks share: measure students against their teacher in one run, and
merge the rows into a results file whose markdown table is regenerated."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from leanformer.benchmark import Candidate, benchmark
from leanformer.distill.general import GENERAL_RECORD_FILE
from leanformer.measure import BenchmarkRow, merge_results, read_results, render_benchmark, write_results
from leanformer.student import METRICS_FILE, TRAINING_LOG_FILE, stage_output
from leanformer.teacher import teacher_metrics


def command_line() -> str:
    """The command that reproduces this run, quoted for a shell (labels such as "hybrid_filled λ10" hold
    spaces); --train_only is left out because the rows it leads to are measured by the command without it."""
    return shlex.join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *(a for a in sys.argv[1:] if a != "--train_only")])


def run_dir(runs: Path, task: str, label: str) -> Path:
    """Where a benchmark saves the student of a row: "glue/sst2", "hybrid_filled λ10 [16000×3]" ->
    runs/glue_sst2-hybrid_filled-λ10-[16000×3] (spaces become dashes, commas go)."""
    return runs / f"{task.replace('/', '_')}-{label.replace(' ', '-').replace(',', '')}"


def add_budget_arguments(parser, lr: float = 1e-4) -> None:
    """The flags every method benchmark shares: learning rate, budget overrides, repeats, train-only."""
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--train_samples", type=int, default=None, help="override the task's student training examples (0: the whole train split; rows get a budget tag)")
    parser.add_argument("--epochs", type=float, default=None, help="override the task's student epochs (rows get a budget tag)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--train_only", action="store_true", help="train the students and stop (measure later, on a quiet machine)")


def student_budget(defaults: dict, train_samples: int | None, epochs: float | None) -> tuple[dict, str]:
    """A task's student budget with the command line's overrides, and the tag ("24000×1") that makes a
    non-default budget its own row and run directory ("" for the default budget)."""
    # --train_samples 0 means the whole train split
    overrides = {k: v for k, v in (("max_train_samples", train_samples), ("epochs", epochs)) if v is not None}
    if overrides.get("max_train_samples") == 0:
        overrides["max_train_samples"] = None
    settings = {**defaults, **overrides}
    return settings, f"{settings.get('max_train_samples') or 'all'}×{settings['epochs']:g}" if overrides else ""


def reuse_finished_prefix(out: Path, stages: list, finished: dict[str, tuple[list, Path]]) -> None:
    """Link the stage outputs of `out`'s recipe to a finished row whose recipe is a prefix of it
    (pruning → pruning → int8): the same stages on the same data and seed, so
    they are trained once and every longer composition continues from them (distil_recipe reuses
    a finished stage under resume)."""
    mine = [s.to_dict() for s in stages]
    prefixes = [(len(p), p, path) for p, path in finished.values() if len(p) < len(stages) and [s.to_dict() for s in p] == mine[: len(p)]]
    if not prefixes:
        return
    _, prefix, path = max(prefixes, key=lambda t: t[0])
    for i, stage in enumerate(prefix):
        source = stage_output(path, i, len(prefix), stage.method)
        link = stage_output(out, i, len(stages), stage.method)
        if not link.exists():
            link.symlink_to(source.resolve(), target_is_directory=True)


def stage_costs(out: Path, stages) -> tuple[list[float | None], float | None]:
    """Seconds per optimizer step of each stage's distillation (teacher forward included; None: not
    recorded, e.g. PTQ; a Kronecker stage 1 on unlabelled text comes first) and the whole recipe's
    training seconds (a row's training time is the sum of its stages', also of one reused from
    another recipe), from each stage's saved training log and metrics."""
    per_step, seconds = [], []
    if stages and stages[0].general is not None:
        general = Path(f"{out}.general") / GENERAL_RECORD_FILE
        record = json.loads(general.read_text()) if general.is_file() else {}
        per_step.append(record.get("seconds_per_step"))
        seconds.append(record.get("train_seconds"))
    for i, stage in enumerate(stages):
        stage_dir = stage_output(out, i, len(stages), stage.method)
        record = json.loads((stage_dir / METRICS_FILE).read_text()) if (stage_dir / METRICS_FILE).is_file() else {}
        recorded = (record.get("seconds_per_step") or {}).get("distillation")  # over all of the stage's runs
        if recorded is None:  # a student saved before that record: the last run's train_runtime / steps
            log = json.loads((stage_dir / TRAINING_LOG_FILE).read_text()) if (stage_dir / TRAINING_LOG_FILE).is_file() else []
            runs = [e["train_runtime"] / e["step"] for e in log if e.get("phase") == "distillation" and e.get("train_runtime") and e.get("step")]
            recorded = round(runs[0], 3) if runs else None
        per_step.append(recorded)
        seconds.append(record.get("train_seconds"))
    return per_step, None if None in seconds else round(sum(seconds), 1)


def measure_students(teacher_path: Path, students: list[tuple[Candidate, dict]], task, *, command: str, **kwargs) -> list[BenchmarkRow]:
    """Teacher row first, then one row per student with its `extra` details attached."""
    record = teacher_metrics(teacher_path)
    teacher = Candidate("teacher", teacher_path, metric=record["metrics"]["test"][record["metric_name"]])
    measured = benchmark(teacher, [c for c, _ in students], task, command=command, **kwargs)
    for row, (_, extra) in zip(measured[1:], students):
        row.extra.update(extra)
    measured[0].extra["metrics_test"] = record["metrics"]["test"]
    for row in measured:  # the table shows every test metric, e.g. MRPC's accuracy beside its F1
        others = {k: v for k, v in (row.extra.get("metrics_test") or {}).items() if k != row.metric_name}
        if others:
            row.extra.setdefault("secondary_metrics", others)
    return measured


def record_rows(measured: list[BenchmarkRow], out_json: Path, markdown: Path, *, title: str, command: str) -> None:
    """Merge a run's rows into `out_json` (`merge_results`: a newer measurement replaces a model's row on
    its task and CPU, a run on another CPU adds its rows beside the first's, each run keeps its teacher
    row) and re-render `markdown`."""
    write_results(merge_results(read_results(out_json) if out_json.exists() else [], measured), out_json)
    render_benchmark(out_json, markdown, title=title, command=command)


def generation_latency(runners: dict, tokenizer, sources: list[str], *, repeats: int, new_tokens: int = 32) -> dict[int, dict]:
    """{batch size: {label: LatencyResult}} for b1 and b32: PyTorch translation models and
    `OnnxSeq2Seq` graphs timed interleaved in one run, each generating exactly `new_tokens` greedy
    tokens from the same `sources` (so every backend does the same work)."""
    import torch

    from leanformer.deploy.seq2seq import OnnxSeq2Seq
    from leanformer.measure import compare_latency

    def generate(runner, batch):
        if isinstance(runner, OnnxSeq2Seq):
            return runner.generate(batch["input_ids"], batch["attention_mask"], max_new_tokens=new_tokens, stop_at_eos=False)
        return runner.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, num_beams=1, do_sample=False)

    latency = {}
    for b in (1, 32):
        batch = tokenizer(sources[:b], padding=True, return_tensors="pt")
        with torch.inference_mode():
            latency[b] = compare_latency({k: (lambda r=r: generate(r, batch)) for k, r in runners.items()}, repeats=repeats, threads=2, progress=False)
        print(f"generation latency, batch {b}, {new_tokens} tokens:", {k: round(v.median_ms, 1) for k, v in latency[b].items()}, flush=True)
    return latency
