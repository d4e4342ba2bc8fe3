"""A Hugging Face style model card (README.md) for every model leanformer writes."""

from __future__ import annotations

import json

import yaml

from .api import recipe_of
from .measure import count_parameters
from .registry import method_by_name


def model_card(model, record: dict) -> str:
    """README.md text: front matter, what the model is, its measured metrics, recipe, how to run it."""
    recipe = recipe_of(model)
    methods = [stage["method"] for stage in recipe]
    notes = "; ".join(n for n in (method_by_name(m).export_note for m in methods) if n)
    seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
    front = {
        "library_name": "transformers",
        "tags": ["leanformer", *methods] or ["leanformer"],
        "pipeline_tag": "translation" if seq2seq else ("question-answering" if "QuestionAnswering" in type(model).__name__ else "text-classification"),
    }
    params = count_parameters(model)["total"]
    lines = [
        "---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "",
        f"# {type(model).__name__}: {' → '.join(methods) if methods else 'dense'} on {record.get('task', '?')}", "",
        f"Made with leanformer from {'teacher `' + str(record['teacher']) + '`' if record.get('teacher') else 'a packaged model'}; "
        f"{params:,} parameters.", "",
        "## Metrics (measured after training)", "",
        "| split | " + " | ".join(sorted({k for m in record.get("metrics", {}).values() for k in m})) + " |",
    ]
    names = sorted({k for m in record.get("metrics", {}).values() for k in m})
    lines.append("|---|" + "---|" * len(names))
    for split, metrics in record.get("metrics", {}).items():
        lines.append(f"| {split} | " + " | ".join(f"{metrics[n]:.2f}" if n in metrics else "—" for n in names) + " |")
    lines += ["", "## Recipe", "", "```json", json.dumps(recipe, indent=2) if recipe else "[]", "```", ""]
    if record.get("settings"):
        lines += ["Training settings:", "", "```json", json.dumps(record["settings"], indent=2), "```", ""]
    lines += [
        "## Load and run", "",
        "```python",
        "import leanformer",
        'model = leanformer.load("THIS_DIRECTORY")   # rebuilds the recipe, reads safetensors only',
        "```", "",
        "## Deploy: text in, answers out (onnxruntime, no torch)", "",
        "```bash",
        f"leanformer export --model THIS_DIRECTORY --output THIS_DIRECTORY/{'onnx' if seq2seq else 'model.onnx'}"
        + (f"   # {notes}" if notes else ""),
        "```", "",
        "```python",
        "from leanformer import runtime   # needs onnxruntime, tokenizers" + (", sentencepiece" if seq2seq else "") + "; not torch",
        'model = runtime.load("THIS_DIRECTORY")',
    ]
    if seq2seq:
        lines += ['model(["a sentence to translate"])   # ["its translation"] (greedy)']
    elif front["pipeline_tag"] == "question-answering":
        lines += ['model("a question?", "the context that answers it")   # {"answer", "score", "start", "end"}']
    else:
        lines += ['model(["a text", "another text"])   # [{"label": ..., "score": ...}, ...]']
    lines += ["```", ""]
    return "\n".join(lines)
