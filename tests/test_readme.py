"""README's Python examples run as written: every `student = leanformer.compress(teacher, ...)`
line of its ```python blocks, one after another on one real teacher (the packaged MiniLM-L6 with
a 2-way head), which stays untouched by all of them."""

import re
from pathlib import Path

import pytest
import torch
import transformers

import leanformer
from leanformer.pretrained import resolve_model

pytestmark = pytest.mark.slow  # the real packaged model

README = Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
COMPRESS = re.compile(r"^student = leanformer\.compress\(teacher, (.+?)\)\s*(#.*)?$")


def _examples() -> list[tuple[str, str]]:
    """(imports of the block, config expression) for every compress line, in README order."""
    found = []
    for block in BLOCKS:
        imports = "\n".join(line for line in block.splitlines() if line.startswith("from leanformer"))
        found += [(imports, m.group(1)) for m in map(COMPRESS.match, block.splitlines()) if m and m.group(1) != "method_config"]
    return found


def test_every_compress_example_of_the_readme_runs_on_one_teacher():
    examples = _examples()
    assert len(examples) >= 5  # Kronecker (3), pruning, quantization
    torch.manual_seed(0)
    teacher = transformers.BertForSequenceClassification.from_pretrained(resolve_model("minilm"), num_labels=2, use_safetensors=True).eval()
    state = {k: v.clone() for k, v in teacher.state_dict().items()}
    for imports, expression in examples:
        scope: dict = {}
        exec(imports, scope)  # the block's own imports, nothing else
        student = leanformer.compress(teacher, eval(expression, scope))
        assert leanformer.recipe_of(student), expression
    assert all(torch.equal(v, state[k]) for k, v in teacher.state_dict().items())
    assert leanformer.recipe_of(teacher) == []


def test_every_import_line_of_the_readme_imports():
    """A renamed module or moved name must not leave README's examples broken."""
    lines = sorted({line for block in BLOCKS for line in block.splitlines() if line.startswith(("from leanformer", "import leanformer"))})
    assert len(lines) >= 5
    for line in lines:
        exec(line, {})


def test_the_python_block_runs_as_written_on_a_smaller_budget(tmp_path, monkeypatch):
    """README's first Python block, executed line for line in a fresh directory; only the budget is
    smaller (32 training rows, 2 steps), so the test checks the calls, not the accuracy."""
    block = next(b for b in BLOCKS if "leanformer.distil(" in b)
    budget = block.replace("max_train_samples=2000", "max_train_samples=32").replace("TrainConfig(epochs=1)", "TrainConfig(max_steps=2, max_length=64)")
    assert budget.count("max_steps=2") == 2 and "max_train_samples=32" in budget
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEANFORMER_CACHE", str(tmp_path / "cache"))
    scope: dict = {}
    exec(budget, scope)
    assert (tmp_path / "student" / "model.onnx").is_file() and (tmp_path / "untrained" / "config.json").is_file()
    assert [s["method"] for s in leanformer.recipe_of(scope["student"])] == ["quantization"]


def _help(command: str, method: str | None) -> str:
    from contextlib import redirect_stdout
    from io import StringIO

    from leanformer.cli import main

    out = StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit):
        main([command, *(["--method", method] if method else []), "--help"])
    return out.getvalue()


def test_every_flag_of_the_readme_command_lines_exists():
    """Each `leanformer COMMAND --flag ...` line of README's bash blocks names flags that command has."""
    lines = [line.split("#")[0].split() for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
             for line in block.splitlines() if line.startswith("leanformer ")]
    assert len(lines) >= 7
    for argv in lines:
        method = argv[argv.index("--method") + 1] if "--method" in argv else None  # a method's own flags
        method = None if method == "NAME" else method  # README's placeholder
        known = _help(argv[1], method)
        for flag in (a.split("=")[0] for a in argv[2:] if a.startswith("--")):
            assert re.search(rf"{flag}\b", known), f"README: `{' '.join(argv)}`: {argv[1]} has no {flag}"
