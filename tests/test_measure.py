"""Measurement: parameter kinds, FLOPs and sizes against hand counts from the config; latency plumbing; results files."""

import dataclasses
import json
import types

import pytest
import torch
from torch import nn

from leanformer.errors import DataError, UnsupportedModelError
from leanformer.measure import (
    BenchmarkRow,
    bytes_on_disk,
    compare_latency,
    count_parameters,
    dummy_inputs,
    flops_per_token,
    latency_of_model,
    linear_parameters,
    markdown_table,
    measure_latency,
    merge_results,
    read_results,
    render_benchmark,
    total_parameters,
    write_results,
)
from tiny_models import tiny_model

FAMILIES = ["bert", "roberta", "mpnet", "distilbert", "marian", "bart"]


def linear(n_in, n_out, bias=True):
    return n_in * n_out + (n_out if bias else 0)


# ---- parameters ----


def test_bert_parameter_kinds_match_a_hand_count():
    model = tiny_model("bert")
    c = model.config
    h, i, L = c.hidden_size, c.intermediate_size, c.num_hidden_layers
    expected = {
        "attention": L * 4 * linear(h, h),
        "ffn": L * (linear(h, i) + linear(i, h)),
        "embeddings": (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * h + 2 * h,
        # two LayerNorms per layer, pooler, classifier
        "other": L * 2 * 2 * h + linear(h, h) + linear(h, c.num_labels),
    }
    counts = count_parameters(model)
    assert {k: counts[k] for k in expected} == expected
    assert counts["total"] == sum(expected.values()) == sum(p.numel() for p in model.parameters())
    assert linear_parameters(model) == expected["attention"] + expected["ffn"]


def test_marian_tied_embeddings_are_counted_once_as_embeddings():
    model = tiny_model("marian")
    c = model.config
    d, i, L = c.d_model, c.encoder_ffn_dim, c.encoder_layers
    assert model.lm_head.weight is model.model.shared.weight  # the tie this test is about
    expected = {
        # one shared token table (also the LM head) + encoder and decoder position tables
        "embeddings": c.vocab_size * d + 2 * c.max_position_embeddings * d,
        "attention": L * 4 * linear(d, d) + L * 8 * linear(d, d),  # decoder: self + cross
        "ffn": 2 * L * (linear(d, i) + linear(i, d)),
        "other": L * 2 * 2 * d + L * 3 * 2 * d,  # LayerNorms: 2 per encoder layer, 3 per decoder layer
    }
    counts = count_parameters(model)
    assert {k: counts[k] for k in expected} == expected
    assert counts["total"] == sum(expected.values()) == sum(p.numel() for p in model.parameters())
    assert counts["total"] < sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False))


def test_distilbert_parameter_kinds_match_a_hand_count():
    model = tiny_model("distilbert")
    c = model.config
    h, i, L = c.dim, c.hidden_dim, c.n_layers
    expected = {
        "attention": L * 4 * linear(h, h),
        "ffn": L * (linear(h, i) + linear(i, h)),
        "embeddings": (c.vocab_size + c.max_position_embeddings) * h + 2 * h,
        "other": L * 2 * 2 * h + linear(h, h) + linear(h, c.num_labels),  # pre_classifier + classifier
    }
    counts = count_parameters(model)
    assert {k: counts[k] for k in expected} == expected
    assert counts["total"] == sum(expected.values())


@pytest.mark.parametrize("model_type", FAMILIES)
def test_kinds_add_up_to_the_total(model_type):
    model = tiny_model(model_type)
    counts = count_parameters(model)
    assert counts["total"] == sum(counts[k] for k in ("embeddings", "attention", "ffn", "other"))
    assert counts["total"] == total_parameters(model)


def test_unknown_family_raises_but_total_parameters_works():
    model = nn.Linear(3, 2)
    model.config = types.SimpleNamespace(model_type="gpt2")
    with pytest.raises(UnsupportedModelError, match="gpt2"):
        count_parameters(model)
    with pytest.raises(UnsupportedModelError):
        flops_per_token(model)
    assert total_parameters(model) == 8


class FactoredLinear(nn.Module):
    """Stand-in for a method layer: not an nn.Linear, own FLOP count, a child that must not be visited."""

    FLOPS = 777

    def __init__(self, in_features, out_features):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.A = nn.Parameter(torch.randn(4, 4))
        self.B = nn.Parameter(torch.randn(out_features // 4, in_features // 4))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.correction = nn.Linear(4, 4, bias=False)

    def forward(self, x):
        return x @ torch.kron(self.A, self.B).T + self.bias

    def flops_per_token(self, seq_len):
        return self.FLOPS


def test_a_method_layer_at_a_query_path_counts_as_attention_and_reports_its_own_flops():
    model = tiny_model("bert")
    before, flops_before = count_parameters(model), flops_per_token(model, 128)
    attention = model.bert.encoder.layer[0].attention.self
    h = model.config.hidden_size
    attention.query = FactoredLinear(h, h)
    new_params = sum(p.numel() for p in attention.query.parameters())
    after = count_parameters(model)
    assert after["attention"] == before["attention"] - linear(h, h) + new_params
    assert {k: after[k] for k in ("embeddings", "ffn", "other")} == {k: before[k] for k in ("embeddings", "ffn", "other")}
    # its method replaces 2*h*h; its child Linear is not counted on top
    assert flops_per_token(model, 128) == flops_before - 2 * h * h + FactoredLinear.FLOPS
    model(**dummy_inputs(model, 2, 8))  # still a working model


# ---- FLOPs ----


def bert_flops_by_hand(c, seq_len, heads_per_layer=None):
    h, i, L, n = c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads
    head_dim = h // n
    total = 0.0
    for layer in range(L):
        a = (heads_per_layer or [n] * L)[layer] * head_dim  # width of Q/K/V outputs
        total += 3 * 2 * h * a + 2 * a * h  # Q, K, V, attention output
        total += 2 * 2 * seq_len * a  # Q.K^T and softmax.V
        total += 2 * h * i + 2 * i * h  # FFN
    total += (2 * h * h + 2 * h * c.num_labels) / seq_len  # pooler + classifier, once per sequence
    return round(total)


@pytest.mark.parametrize("seq_len", [128, 64])
def test_bert_flops_match_the_formula(seq_len):
    model = tiny_model("bert")
    assert flops_per_token(model, seq_len) == bert_flops_by_hand(model.config, seq_len)


def test_marian_flops_count_encoder_decoder_and_lm_head_per_token():
    model = tiny_model("marian")
    c, S = model.config, 128
    d, i, L = c.d_model, c.encoder_ffn_dim, c.encoder_layers
    encoder_layer = 4 * 2 * d * d + 4 * S * d + 2 * 2 * d * i
    decoder_layer = 8 * 2 * d * d + 2 * 4 * S * d + 2 * 2 * d * i  # self + cross attention
    assert flops_per_token(model, S) == L * encoder_layer + L * decoder_layer + 2 * d * c.vocab_size


def test_halving_heads_on_one_layer_reduces_flops_by_the_hand_computed_amount():
    model = tiny_model("bert")
    c, S = model.config, 128
    h, n = c.hidden_size, c.num_attention_heads
    before = flops_per_token(model, S)
    params_before = count_parameters(model)["attention"]

    # keep the first half of the heads of layer 1: slice Q/K/V rows and attention-output columns
    layer = model.bert.encoder.layer[1]
    kept = (h // n) * (n // 2)
    for name in ("query", "key", "value"):
        old = getattr(layer.attention.self, name)
        new = nn.Linear(h, kept)
        new.weight.data, new.bias.data = old.weight.data[:kept].clone(), old.bias.data[:kept].clone()
        setattr(layer.attention.self, name, new)
    old = layer.attention.output.dense
    new = nn.Linear(kept, h)
    new.weight.data, new.bias.data = old.weight.data[:, :kept].clone(), old.bias.data.clone()
    layer.attention.output.dense = new
    layer.attention.self.num_attention_heads = n // 2

    removed = h - kept
    assert before - flops_per_token(model, S) == 3 * 2 * h * removed + 2 * removed * h + 2 * 2 * S * removed
    assert flops_per_token(model, S) == bert_flops_by_hand(c, S, heads_per_layer=[n, n // 2])
    assert params_before - count_parameters(model)["attention"] == 3 * (h * removed + removed) + removed * h
    model(**dummy_inputs(model, 2, 8))  # the sliced model still runs


# ---- bytes on disk ----


def test_bytes_on_disk_is_the_safetensors_file_size(tmp_path):
    model = tiny_model("bert")
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    (tmp_path / "training_args.bin").write_bytes(b"x" * 1000)  # a Trainer file, not weights
    assert bytes_on_disk(tmp_path) == weights.stat().st_size
    assert bytes_on_disk(weights) == weights.stat().st_size
    # fp32 weights dominate the file: 4 bytes per parameter plus a small header
    assert 4 * total_parameters(model) <= weights.stat().st_size < 4 * total_parameters(model) + 10_000


def test_bytes_on_disk_of_a_directory_without_weights_is_an_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(DataError, match="no weight files"):
        bytes_on_disk(tmp_path)
    with pytest.raises(FileNotFoundError):
        bytes_on_disk(tmp_path / "missing")


# ---- latency ----


def test_measure_latency_counts_calls_sets_threads_and_restores_them():
    original = torch.get_num_threads()
    seen = []

    def fn():
        seen.append((torch.get_num_threads(), torch.is_inference_mode_enabled()))
        return sum(range(1000))

    try:
        torch.set_num_threads(1)
        result = measure_latency(fn, warmup=2, repeats=5, threads=2)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(original)
    assert seen == [(2, True)] * 7
    assert len(result.samples_ms) == 5
    assert 0 < result.min_ms <= result.median_ms <= result.max_ms
    assert result.median_ms == sorted(result.samples_ms)[2]


def test_threads_are_restored_when_the_function_raises():
    original = torch.get_num_threads()

    def boom():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        measure_latency(boom, threads=original + 1)
    assert torch.get_num_threads() == original


def test_compare_latency_interleaves_round_robin():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("teacher", "a", "b")}
    results = compare_latency(fns, warmup=1, repeats=3, threads=None, progress=False)
    assert calls == ["teacher", "a", "b"] * 4
    assert list(results) == ["teacher", "a", "b"]
    assert all(len(r.samples_ms) == 3 for r in results.values())


def test_dummy_inputs_fit_each_family():
    bert, distil, marian = tiny_model("bert"), tiny_model("distilbert"), tiny_model("marian")
    inputs = dummy_inputs(bert, 3, 16, seed=4)
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    assert inputs["input_ids"].shape == (3, 16)
    assert 5 <= inputs["input_ids"].min() and inputs["input_ids"].max() < bert.config.vocab_size
    assert inputs["attention_mask"].all()
    assert torch.equal(inputs["input_ids"], dummy_inputs(bert, 3, 16, seed=4)["input_ids"])
    assert set(dummy_inputs(distil, 2, 8)) == {"input_ids", "attention_mask"}
    assert set(dummy_inputs(marian, 2, 8)) == {"input_ids", "attention_mask", "decoder_input_ids"}
    result = latency_of_model(marian, 2, 8, warmup=1, repeats=2, threads=None)
    assert len(result.samples_ms) == 2


# ---- results ----

FIELDS = (
    "model method task metric_name metric teacher_metric params teacher_params bytes teacher_bytes "
    "latency_b1_ms latency_b32_ms teacher_latency_b1_ms teacher_latency_b32_ms flops_per_token "
    "teacher_flops_per_token command"
).split()


def rows():
    common = dict(
        task="sst2", metric_name="accuracy", teacher_metric=0.9266, teacher_params=110_000_000,
        teacher_bytes=440_000_000, teacher_latency_b1_ms=100.0, teacher_latency_b32_ms=1600.0,
        teacher_flops_per_token=21_700_000_000, command="leanformer bench sst2",
    )
    teacher = BenchmarkRow(
        model="bert-base", method="teacher", metric=0.9266, params=110_000_000, bytes=440_000_000,
        latency_b1_ms=100.0, latency_b32_ms=1600.0, flops_per_token=21_700_000_000, **common,
    )
    student = BenchmarkRow(
        model="bert-base", method="pruning", metric=0.9060, params=44_000_000, bytes=176_000_000,
        latency_b1_ms=40.0, latency_b32_ms=500.0, flops_per_token=7_000_000_000,
        extra={"heads_per_layer": [4, 3, 12], "note": {"nested": True}}, **common,
    )
    return [teacher, student]


def test_row_fields_come_in_the_agreed_order():
    assert [f.name for f in dataclasses.fields(BenchmarkRow)] == FIELDS + ["extra"]


def test_results_round_trip_through_json_atomically(tmp_path):
    path = tmp_path / "out" / "results.json"
    write_results(rows(), path)
    assert read_results(path) == rows()
    assert json.loads(path.read_text())[1]["extra"] == {"heads_per_layer": [4, 3, 12], "note": {"nested": True}}
    write_results(rows()[:1], path)  # overwrite in place
    assert read_results(path) == rows()[:1]
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temp file left behind


def test_reading_a_row_with_unknown_fields_is_an_error(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps([{"model": "m", "method": "x", "task": "t", "speed": 3}]))
    with pytest.raises(DataError, match="speed"):
        read_results(path)


def test_markdown_table_derives_ratios_from_the_rows():
    table = markdown_table(rows(), title="SST-2")
    lines = table.splitlines()
    assert lines[0] == "## SST-2"
    teacher_line = next(line for line in lines if "| teacher |" in line)
    student_line = next(line for line in lines if "| pruning |" in line)
    assert teacher_line.count("1.00×") == 5  # compression, size, speedup b1 and b32, FLOPs
    assert "+0.0000" in teacher_line
    assert "2.50×" in student_line  # b1: 100 ms / 40 ms
    assert "3.20×" in student_line  # b32: 1600 / 500
    assert "-0.0206" in student_line  # 0.9060 - 0.9266
    assert "44.0M" in student_line and "176.00" in student_line
    assert "3.10×" in student_line  # FLOPs 21.7G / 7.0G


def test_secondary_metrics_follow_the_primary_one():
    row = BenchmarkRow(model="m", method="quantization", task="bible_en_fr", metric_name="bleu", metric=28.08,
                       extra={"secondary_metrics": {"beam 4": 30.3}})
    assert "| bleu 28.08 (beam 4: 30.30) |" in markdown_table([row])


def test_missing_numbers_show_as_dashes():
    table = markdown_table([BenchmarkRow(model="m", method="kronecker", task="t")])
    assert "—" in table.splitlines()[-1] and "×" not in table


def test_render_benchmark_writes_title_command_then_table(tmp_path):
    write_results(rows(), tmp_path / "results.json")
    render_benchmark(tmp_path / "results.json", tmp_path / "README.md", title="SST-2 pruning", command="leanformer bench sst2")
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("# SST-2 pruning\n\n```\nleanformer bench sst2\n```\n")
    assert markdown_table(rows()) in text


def test_render_benchmark_lists_every_command_that_measured_a_row(tmp_path):
    first, second = rows()[0], rows()[1]
    first.command, second.command = "python bench.py --tasks a", "python bench.py --tasks b"
    write_results([first, second], tmp_path / "results.json")
    render_benchmark(tmp_path / "results.json", tmp_path / "README.md", title="t", command="python bench.py --tasks b")
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("# t\n\n```\npython bench.py --tasks a\npython bench.py --tasks b\n```\n")


def test_render_benchmark_keeps_a_tasks_rows_together_when_a_later_run_adds_to_it(tmp_path):
    teacher, student = rows()[0], rows()[1]
    other = BenchmarkRow(**{**vars(teacher), "task": "glue/mrpc", "model": "mrpc teacher"})
    later = BenchmarkRow(**{**vars(student), "model": "later student"})  # same task as the first, recorded last
    write_results([teacher, student, other, later], tmp_path / "results.json")
    render_benchmark(tmp_path / "results.json", tmp_path / "README.md", title="t", command="c")
    models = [line.split(" | ")[0].lstrip("| ") for line in (tmp_path / "README.md").read_text().splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert models == [teacher.model, student.model, "later student", "mrpc teacher"]


def _run(command: str, teacher_b32_ms: float, *students: str, cpu: str = "AMD EPYC") -> list[BenchmarkRow]:
    """One run's rows: its teacher, then students each timed at half the teacher's batch-32 time."""
    timed = dict(command=command, task="sst2", teacher_latency_b32_ms=teacher_b32_ms, extra={"cpu": cpu})
    return [BenchmarkRow(model="teacher", method="teacher", latency_b32_ms=teacher_b32_ms, **timed),
            *(BenchmarkRow(model=s, method="depth", latency_b32_ms=teacher_b32_ms / 2, **timed) for s in students)]


def test_merge_results_keeps_each_runs_teacher_beside_the_rows_it_timed():
    first = _run("bench --variants a b", 800.0, "a", "b")
    second = _run("bench --variants b c", 600.0, "b", "c")  # a faster machine day: the teacher too
    merged = merge_results(first, second)
    # b is replaced by its newer measurement; a keeps the teacher it was divided by
    assert [(r.model, r.command) for r in merged] == [
        ("teacher", first[0].command), ("a", first[0].command), ("b", second[0].command),
        ("teacher", second[0].command), ("c", second[0].command)]
    # measuring the same rows again replaces the run's teacher row with the new one, never adds a second
    again = _run("bench --variants b c", 650.0, "b", "c")
    assert [r.latency_b32_ms for r in merge_results(merged, again) if r.model == "teacher"] == [800.0, 650.0]
    # a run whose rows were all measured again by another run loses its teacher row
    assert [(r.model, r.command) for r in merge_results(merged, _run("bench", 700.0, "a"))] == [
        ("a", "bench"), ("b", second[0].command), ("teacher", second[0].command), ("c", second[0].command),
        ("teacher", "bench")]
    # another CPU's run stays beside, teacher and all
    assert len(merge_results(merged, _run("bench --variants a b", 300.0, "a", "b", cpu="Intel Xeon"))) == len(merged) + 3


def test_render_benchmark_puts_each_runs_teacher_above_its_rows(tmp_path):
    merged = merge_results(_run("bench --variants a b", 800.0, "a", "b"), _run("bench --variants b c", 600.0, "b", "c"))
    write_results(merged, tmp_path / "results.json")
    render_benchmark(tmp_path / "results.json", tmp_path / "README.md", title="t", command="c")
    header, *table = [line.split(" | ") for line in (tmp_path / "README.md").read_text().splitlines() if line.startswith("| ")]
    b32_ms, speedup = header.index("b32 ms"), header.index("Speedup b32")
    assert [cells[0].lstrip("| ") for cells in table] == ["teacher", "a", "teacher", "b", "c"]
    assert "shows each run's teacher row above that run's rows" in (tmp_path / "README.md").read_text()
    # every row's speed-up is the time of the teacher row above it divided by its own
    teacher_ms = None
    for cells in table:
        if cells[0] == "| teacher":
            teacher_ms = float(cells[b32_ms])
        assert cells[speedup] == f"{teacher_ms / float(cells[b32_ms]):.2f}×"


def test_render_benchmark_names_the_cpu_of_every_row(tmp_path):
    first, second, *_ = rows()
    first.extra["cpu"] = "Intel(R) Xeon(R) Processor"
    third = BenchmarkRow(**{**vars(first), "extra": {"cpu": "AMD EPYC", "cpu_flags": ["avx2"]}})
    fourth = BenchmarkRow(**{**vars(first), "extra": {"cpu": "AMD EPYC", "cpu_flags": ["avx2", "avx512f", "avx512_vnni"]}})
    write_results([first, second, third, fourth], tmp_path / "results.json")
    render_benchmark(tmp_path / "results.json", tmp_path / "README.md", title="t", command="c")
    text = (tmp_path / "README.md").read_text()
    # one model name, two integer paths: two machines, never one
    assert ("CPU (a row's ratios hold for its CPU only): A: Intel(R) Xeon(R) Processor; B: not recorded; "
            "C: AMD EPYC (avx2); D: AMD EPYC (avx2, avx512f, avx512_vnni).") in text
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert [t.rsplit("|", 2)[1].strip() for t in table[2:]] == ["A", "B", "C", "D"] and table[0].endswith("| CPU |")
    write_results([second], tmp_path / "results.json")  # one CPU: no column, named in the legend
    render_benchmark(tmp_path / "results.json", tmp_path / "README.md", title="t", command="c")
    text = (tmp_path / "README.md").read_text()
    assert "| CPU |" not in text and "CPU (a row's ratios hold for its CPU only): not recorded." in text


def test_cpu_name_is_the_model_name_of_proc_cpuinfo():
    from leanformer.measure import cpu_name

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    if not names:
        pytest.skip("no model name in /proc/cpuinfo on this machine")
    assert cpu_name() == names[0]


@pytest.mark.parametrize("flags, path", [
    ("fpu sse2 avx avx2 fma", "avx2"),
    ("avx2 avx512f avx512bw avx512dq", "avx512-no-vnni"),
    ("avx2 avx512f avx512bw avx512_vnni", "vnni"),
    ("avx2 avx_vnni", "vnni"),  # AVX-VNNI without AVX-512 (Alder Lake and later client CPUs)
    ("avx2 avx512f avx512bw avx512_vnni amx_bf16 amx_tile amx_int8", "amx"),
    ("fp asimd", "other"),
    ("", "other"),
])
def test_int8_path_follows_the_cpuinfo_flags(flags, path):
    from leanformer.measure import cpu_flags, int8_path

    cpuinfo = f"processor\t: 0\nmodel name\t: X\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n"
    found = cpu_flags(cpuinfo)
    assert set(found) <= set(flags.split()) and all(f in found for f in flags.split() if f in ("avx2", "avx512_vnni", "amx_int8"))
    assert int8_path(found) == path
    assert "avx2" not in cpu_flags("flags\t: avx avx2_fake\n")  # whole words, not substrings
