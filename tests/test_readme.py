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
