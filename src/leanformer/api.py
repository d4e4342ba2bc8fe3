"""The public verbs: `compress` a model with a method config, `save` it, `load` anything leanformer saved."""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

import transformers
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from . import __version__
from .architectures import get_architecture
from .errors import ConfigError, LeanformerError
from .deploy.encoder import export_onnx
from .deploy.seq2seq import export_seq2seq_onnx
from .registry import method_by_name, method_for_config

RECIPE_KEY = "leanformer"  # entry in config.json: {"version": ..., "recipe": [{"method": ..., "config": {...}}]}


def recipe_of(model: nn.Module) -> list[dict]:
    """The compression stages applied to `model` so far (empty for a plain transformers model)."""
    entry = getattr(model.config, RECIPE_KEY, None) or {}
    return list(entry.get("recipe", []))


def compress(model: nn.Module, config) -> nn.Module:
    """A compressed copy of `model`: the method that `config` belongs to, applied and recorded in
    the copy's recipe. `model` itself is left untouched (compress one teacher as often as you like;
    the copy costs the model's memory once more).

    The result is the untrained student, initialised from `model`'s weights; distillation
    (`leanformer.student.distil_student`, `leanformer compress`) then trains it against the
    original. `config` may be a `Recipe`: its stages are applied in order, each finalized before
    the next (e.g. pruning's masks baked), as an untrained composition.
    """
    stages = getattr(config, "stages", None)  # a Recipe (not imported: the recipe module sits above this one)
    configs = [stage.config for stage in stages] if stages is not None else [config]
    student = copy.deepcopy(model)
    for i, stage_config in enumerate(configs):
        student = _apply_stage(student, stage_config)
        if i < len(configs) - 1:
            student = finalize_stage(student, stage_config)
    return student


def _apply_stage(model: nn.Module, config) -> nn.Module:
    method = method_for_config(config)
    reason = method.unsupported(get_architecture(model))  # a sentence naming the family and what is supported
    if reason:
        raise ConfigError(reason)
    stages = recipe_of(model)
    model, structure = method.apply(model, config)
    stage = {"method": method.name, "config": config.to_dict()}
    if structure is not None:
        stage["structure"] = structure
    setattr(model.config, RECIPE_KEY, {"version": __version__, "recipe": stages + [stage]})
    return model


def finalize_stage(model: nn.Module, config) -> nn.Module:
    """The method's finalize (e.g. pruning's masks baked and what they pruned removed), with the
    structure it decided added to the model's last recipe stage, so `load` rebuilds it exactly."""
    model, structure = method_for_config(config).finalize(model, config)
    if structure is not None:
        entry = getattr(model.config, RECIPE_KEY, None)
        if not entry or not entry.get("recipe"):
            raise LeanformerError("finalize_stage needs a model made by leanformer.compress")
        last = entry["recipe"][-1]
        last["structure"] = {**(last.get("structure") or {}), **structure}
    return model


def saved_recipe(path: str | os.PathLike) -> list[dict]:
    """The recipe stages recorded in a saved model's config.json, read without building the model."""
    config = json.loads((Path(path) / "config.json").read_text())
    return list((config.get(RECIPE_KEY) or {}).get("recipe", []))


def export(model: nn.Module, output: str | os.PathLike, *, opset: int = 17, options=()) -> Path:
    """Write `model`'s deployable ONNX form: the last recipe stage whose method deploys as ONNX
    writes it (int8 for quantization), else the float export (factored layers stay factored).
    Encoder-decoders become a directory (encoder + cached decoder step), encoders one .onnx file.
    `options`: export option configs of the methods (e.g. `Int8ExportOptions`), matched by class."""
    output = Path(output)
    seq2seq = get_architecture(model).is_encoder_decoder
    for stage in reversed(recipe_of(model)):
        method = method_by_name(stage["method"])
        given = next((o for o in options if method.export_options and isinstance(o, method.export_options)), None)
        path = method.export_onnx(model, output, seq2seq=seq2seq, opset=opset, options=given)
        if path is not None:
            return path
    return export_seq2seq_onnx(model, output, opset=opset) if seq2seq else export_onnx(model, output, opset=opset)


def deployed_runtime(model: nn.Module) -> str | None:
    """The runtime a method deploys `model` to (e.g. "onnxruntime int8"), or None: it runs as it is."""
    return next((r for r in (method_by_name(s["method"]).deployed_runtime for s in recipe_of(model)) if r), None)


def save(
    model: nn.Module,
    path: str | os.PathLike,
    tokenizer=None,
    *,
    overwrite: bool = True,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """`save_pretrained` (safetensors + config.json with the recipe), written atomically.

    The model is written to a temporary sibling directory and renamed into place, so an
    interrupted save never leaves a half-written model where a good one was.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise LeanformerError(f"output directory {str(path)!r} exists: pass --overwrite or choose another path")
    tmp = writable_temp_dir(path)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if err.errno == errno.ENOSPC:
            raise LeanformerError(
                f"no space left on the device while writing {str(path)!r}; nothing was replaced: free some space and save again"
            ) from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


# What a saved tokenizer leaves in its directory (fast, WordPiece, BPE, SentencePiece and Marian's).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model", "source.spm")


def load_tokenizer(path: str | os.PathLike, vocab_size: int | None = None):
    """The tokenizer saved with a model, refused when it is missing (transformers would silently
    build one of five special tokens: every word `[UNK]`) or does not fit the model's embedding
    table of `vocab_size` rows (ids past its end, or most of its rows unreachable)."""
    directory = Path(path)
    if directory.is_dir() and not any((directory / name).is_file() for name in TOKENIZER_FILES):
        raise LeanformerError(
            f"{str(path)!r} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)}): save the model's tokenizer with it "
            "(tokenizer.save_pretrained(DIR))")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    if vocab_size is not None and not vocab_size // 2 <= len(tokenizer) <= vocab_size:
        raise LeanformerError(
            f"the tokenizer in {str(path)!r} has {len(tokenizer)} tokens but the model's embedding table has {vocab_size} rows: "
            "save the tokenizer the model was trained with in its directory")
    return tokenizer


def check_writable(path: str | os.PathLike) -> None:
    """Fail now, not after hours of training, if `path` cannot be written."""
    shutil.rmtree(writable_temp_dir(Path(path)))


def check_output_apart(output: str | os.PathLike, inputs: dict[str, str | os.PathLike | None], *, inside_allowed: bool = False) -> None:
    """Refuse an output directory that is, contains or lies inside one of the run's inputs (by role:
    "teacher", "data file", ...): writing it would replace or mix into what the user handed in, and
    --overwrite is about an old output, never about an input. Paths are compared resolved (links,
    "..", relative paths); inputs that are not paths on disk (packaged names) are skipped.
    `inside_allowed`: an output that only adds a new entry inside an input directory (an exported
    ONNX file next to the model it came from) is fine."""
    out = Path(output).resolve()
    for role, value in inputs.items():
        if value is None or not Path(value).exists():
            continue
        given = Path(value).resolve()
        relation = "is" if out == given else "contains" if out in given.parents else None
        if relation is None and given in out.parents and not inside_allowed:
            relation = "is inside"
        if relation:
            raise LeanformerError(
                f"output directory {str(output)!r} {relation} the {role} {str(value)!r}: writing there would replace the input; "
                "choose an output directory apart from the inputs")


_HELD_LOCKS: dict[Path, int] = {}  # lock file -> nesting depth in this process (a recipe run locks, then each stage)


def _lock_owner(lock: Path) -> dict | None:
    try:
        owner = json.loads(lock.read_text())
        return owner if isinstance(owner, dict) and isinstance(owner.get("pid"), int) else None
    except (OSError, ValueError):
        return None  # half-written by a run that died at once: stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


@contextlib.contextmanager
def output_lock(output: str | os.PathLike):
    """Only one run writes `output` (and its checkpoints) at a time: `<output>.lock` names the
    writer's host and process. Another live run holding it is an error; a lock left by a run that
    crashed or was killed (its process is gone) is taken over. Re-entrant within one process."""
    lock = Path(output).resolve().with_name(Path(output).name + ".lock")
    if lock in _HELD_LOCKS:
        _HELD_LOCKS[lock] += 1
        try:
            yield lock
        finally:
            _HELD_LOCKS[lock] -= 1
        return
    check_writable(output)  # a clear error for an unwritable place, before the lock file is tried
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for attempt in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            owner = _lock_owner(lock)
            if owner is not None and owner.get("host") != me["host"]:
                raise LeanformerError(
                    f"{str(output)!r} is being written by a run on host {owner.get('host')!r} (pid {owner['pid']}): wait for it, "
                    f"or delete {str(lock)!r} if no run is active there") from None
            if owner is not None and _alive(owner["pid"]):
                raise LeanformerError(
                    f"another leanformer run (pid {owner['pid']}) is writing {str(output)!r}: wait for it to finish or choose "
                    "another output directory") from None
            if attempt == 1:
                raise LeanformerError(f"could not lock {str(output)!r}: {str(lock)!r} keeps reappearing; try again") from None
            lock.unlink(missing_ok=True)  # stale: its run is gone
    with os.fdopen(fd, "w") as f:
        json.dump(me, f)
    _HELD_LOCKS[lock] = 1
    try:
        yield lock
    finally:
        del _HELD_LOCKS[lock]
        lock.unlink(missing_ok=True)


def writable_temp_dir(path: Path) -> Path:
    """A fresh temporary sibling of `path` (created with its parents), or a clear error if the place is not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except PermissionError:
        raise LeanformerError(f"cannot write to {str(path.parent)!r} (permission denied): choose a writable output directory") from None
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in [path.parent, *path.parent.parents] if p.exists() and not p.is_dir()), path.parent)
        raise LeanformerError(f"cannot write to {str(path.parent)!r}: {str(blocker)!r} is a file, not a directory; choose another output directory") from None
    except OSError as err:
        raise LeanformerError(f"cannot write to {str(path.parent)!r}: {err.strerror}; choose another output directory") from None


def _model_class(config: transformers.PretrainedConfig):
    names = config.architectures or []
    for name in names:
        cls = getattr(transformers, name, None) if isinstance(name, str) else None
        if isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel):  # not `pipeline`, `AutoModel`, ...
            return cls
    raise LeanformerError(
        f"config.json names no transformers model class leanformer can build (architectures={names}); "
        "save the model with save_pretrained from a transformers *For* class"
    )


def load(path: str | os.PathLike, *, trust_remote_code: bool = False) -> nn.Module:
    """Load a plain transformers model or a leanformer-compressed one, rebuilding its recipe exactly."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise LeanformerError(
            f"{str(path)!r} is not a saved model: no config.json there (expected a directory written by "
            "leanformer or save_pretrained)"
        )
    try:
        config = transformers.AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError) as err:  # not JSON, no model_type, fields of the wrong type
        raise LeanformerError(f"{str(path / 'config.json')!r} is not a readable model config ({str(err).splitlines()[0][:200]}); save the model again") from None
    cls = _model_class(config)
    stages = _saved_stages(config, path)
    if not stages:
        check_weights(path)
        return cls.from_pretrained(path, trust_remote_code=trust_remote_code, use_safetensors=True).eval()

    model = cls(config)
    saved_version = str(getattr(config, RECIPE_KEY).get("version", "?"))
    for i, stage in enumerate(stages):
        try:
            method = method_by_name(stage["method"])
            stage_config = method.config_class.from_dict(stage["config"], where=f"stage {i + 1} ({stage['method']})")
            model = method.rebuild(model, stage_config, stage.get("structure"))
        except LeanformerError as err:
            if _newer(saved_version, __version__):  # most likely a key or method this version does not know
                raise LeanformerError(
                    f"{str(path)!r} was saved by leanformer {saved_version}, newer than this leanformer {__version__}, and cannot be "
                    f"rebuilt here ({err}): upgrade leanformer (pip install -U leanformer)") from None
            raise LeanformerError(f"{str(path / 'config.json')!r}, the {RECIPE_KEY!r} entry: {err}") from None
    state = _read_weights(path)
    result = model.load_state_dict(state, strict=False)
    tied = _tied_parameter_names(model)
    # tables the model computes rather than stores (e.g. Marian's sinusoidal positions)
    computed = [re.compile(p) for p in getattr(model, "_keys_to_ignore_on_load_missing", None) or []]
    missing = [k for k in result.missing_keys if k not in tied and not any(p.search(k) for p in computed)]
    if missing or result.unexpected_keys:
        raise LeanformerError(
            f"weights in {str(path)!r} do not match the recipe in its config.json "
            f"(missing: {missing[:3]}, unexpected: {result.unexpected_keys[:3]}); was the file edited by hand?"
        )
    model.tie_weights()
    if model.can_generate() and (path / "generation_config.json").is_file():
        # cls(config) derives generation settings from config.json; the saved ones (cache, lengths, tokens) are what was built
        model.generation_config = transformers.GenerationConfig.from_pretrained(path)
    setattr(model.config, RECIPE_KEY, getattr(config, RECIPE_KEY))
    return model.eval()


def _newer(version: str, than: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version) > Version(than)
    except InvalidVersion:
        return False


def _saved_stages(config, path: Path) -> list[dict]:
    """The recipe a saved model records, checked for shape before anything is built from it: a
    tampered or hand-edited config.json is one clear error, not a traceback."""
    entry = getattr(config, RECIPE_KEY, None)
    if entry is None:
        return []
    where = f"{str(path / 'config.json')!r}, the {RECIPE_KEY!r} entry"
    if not isinstance(entry, dict) or not isinstance(entry.get("recipe", []), list):
        raise LeanformerError(f"{where} must be a mapping with a 'recipe' list, got {entry!r:.80}; save the model again with leanformer")
    stages = entry.get("recipe", [])
    for i, stage in enumerate(stages):
        if not isinstance(stage, dict) or not isinstance(stage.get("method"), str) or not isinstance(stage.get("config"), dict):
            raise LeanformerError(f"{where}: stage {i + 1} needs a 'method' name and a 'config' mapping, got {stage!r:.80}; save the model again with leanformer")
        if not isinstance(stage.get("structure") or {}, dict):
            raise LeanformerError(f"{where}: stage {i + 1}'s 'structure' must be a mapping, got {stage['structure']!r:.80}")
    return stages


def _weight_files(path: Path) -> list[Path]:
    files = sorted(path.glob("*.safetensors"))
    if not files:
        pickled = sorted(p.name for p in path.glob("*.bin"))
        raise LeanformerError(
            f"no .safetensors weights in {str(path)!r}" + (f" (only {', '.join(pickled)}, a pickle)" if pickled else "")
            + "; leanformer only loads safetensors: load it yourself if you trust it and save it again with save_pretrained")
    return files


def _corrupted(file: Path, err: Exception) -> LeanformerError:
    return LeanformerError(f"weights file {str(file)!r} is truncated or corrupted ({err}); save the model again")


def check_weights(path: Path) -> None:
    """Open every safetensors header (cheap): a truncated file fails here with a clear message, and
    a directory with only pickled weights (.bin) is refused: nothing is ever unpickled."""
    if not any((path / name).is_file() for name in ("model.safetensors", "model.safetensors.index.json")):
        others = sorted(p.name for p in [*path.glob("*.safetensors"), *path.glob("*.bin")])
        raise LeanformerError(
            f"no model.safetensors in {str(path)!r}" + (f" (found {', '.join(others)})" if others else "")
            + "; leanformer only loads safetensors weights, never a pickle (.bin): load it yourself if you trust it and save it again with save_pretrained")
    for file in _weight_files(path):
        try:
            with safe_open(file, framework="pt") as f:
                f.keys()
        except (SafetensorError, OSError) as err:
            raise _corrupted(file, err) from None


def _read_weights(path: Path) -> dict:
    state = {}
    for file in _weight_files(path):
        try:
            state.update(load_file(file))
        except (SafetensorError, OSError, json.JSONDecodeError) as err:
            raise _corrupted(file, err) from None
    return state


def _tied_parameter_names(model: nn.Module) -> set[str]:
    """Names that share storage with another parameter (save_pretrained writes those once)."""
    seen: dict[int, str] = {}
    tied = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            tied.update({name, seen[id(p)]})
        seen[id(p)] = name
    return tied
