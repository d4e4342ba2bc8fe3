"""Stage 1 (general distillation on unlabelled text) then stage 2 (task distillation), on tiny models."""

import json
import time

import pytest
import torch
import transformers

import leanformer
from leanformer.data.corpus import load_corpus
from leanformer.distill.general import GENERAL_RECORD_FILE, GeneralDistillationConfig, general_distillation
from leanformer.errors import AssetMissingError, DataError
from leanformer.methods.kronecker import KroneckerConfig, KroneckerEmbedding
from leanformer.student import load_encoder
from leanformer.training import TrainConfig
from tiny_models import tiny_config, tiny_inputs

CONFIG = KroneckerConfig(attention_a=[4, 2], ffn_a=[8, 4], embedding_n=4)


def _tokenizer(path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(95)]
    tokenizer = transformers.BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    assert tokenizer("w1 w2")["input_ids"] == [2, 6, 7, 3]
    return tokenizer


@pytest.mark.parametrize("mlm", [False, True])
def test_general_then_task_distillation(tmp_path, mlm):
    torch.manual_seed(0)
    pretrained = tmp_path / "pretrained"
    cls = transformers.BertForMaskedLM if mlm else transformers.BertModel
    cls(tiny_config("bert")).save_pretrained(pretrained)
    tokenizer = _tokenizer(tmp_path)
    tokenizer.save_pretrained(pretrained)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(f"w{(i * 7 + j) % 95}" for j in range(12)) for i in range(40)))

    train = TrainConfig(max_steps=6, batch_size=8, learning_rate=1e-3, report_to="none", progress=False, max_length=16)
    started = time.perf_counter()
    out = general_distillation(GeneralDistillationConfig(pretrained=str(pretrained), corpus=str(corpus)), CONFIG, train, tmp_path / "stage1")
    elapsed = time.perf_counter() - started
    stage1 = leanformer.load(out)
    record = json.loads((out / GENERAL_RECORD_FILE).read_text())  # what stage 1 cost, for cost tables
    assert record["steps"] == 6 and record["passages"] == 40 and 0 < record["train_seconds"] < elapsed
    assert record["seconds_per_step"] == pytest.approx(record["train_seconds"] / 6, abs=0.05 / 6 + 1e-3)  # seconds rounded to 0.1
    assert any(isinstance(m, KroneckerEmbedding) for m in stage1.modules())

    # stage 2 starts from a fine-tuned teacher: its encoder is replaced by stage 1's, its head kept
    teacher = transformers.BertForSequenceClassification(tiny_config("bert"))
    student = leanformer.compress(teacher, CONFIG)
    head = student.classifier.weight.detach().clone()
    load_encoder(student, out)
    for key, value in stage1.base_model.state_dict().items():
        if not key.startswith("pooler."):
            torch.testing.assert_close(student.base_model.state_dict()[key], value)
    torch.testing.assert_close(student.classifier.weight, head)
    with torch.no_grad():
        student(**tiny_inputs(student))


def test_corpus_from_a_text_file_and_errors(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("one passage\n\n second passage \n")
    assert load_corpus(str(f))["text"] == ["one passage", "second passage"]
    f.write_text("\n \n")
    with pytest.raises(DataError, match="is empty"):
        load_corpus(str(f))
    with pytest.raises(DataError, match="neither a built-in corpus"):
        load_corpus(str(tmp_path / "missing.txt"))


def test_vitaminc_wiki_corpus_holds_only_train_evidence():
    from leanformer.data import load_task

    try:
        corpus = load_corpus("vitaminc_wiki")
    except AssetMissingError as err:  # only the archive's absence (`make assets` fetches it; CI has it); any other error fails
        pytest.skip(f"vitaminc source missing: {err}")
    texts = set(corpus["text"])
    task = load_task("vitaminc")
    held_out = set(task.splits["validation"]["sentence1"]) | set(task.splits["test"]["sentence1"])
    assert len(texts) == len(corpus) > 10000
    assert not texts & held_out


@pytest.mark.slow  # reads the whole corpus and three real tasks (~10 s)
def test_general_english_corpus_is_larger_and_holds_no_evaluation_text():
    from leanformer.data import load_task

    try:
        corpus = load_corpus("general_en")
    except AssetMissingError as err:  # only the archive's absence (`make assets` fetches it; CI has it); any other error fails
        pytest.skip(f"corpus source missing: {err}")
    texts = set(corpus["text"])
    assert len(texts) == len(corpus) > 3 * len(load_corpus("vitaminc_wiki"))
    vitaminc, bible, squad = (load_task(name).splits for name in ("vitaminc", "bible_en_fr", "squad_v1"))
    held_out = set()
    for split in ("validation", "test"):
        held_out |= set(vitaminc[split]["sentence1"]) | set(vitaminc[split]["sentence2"]) | set(bible[split]["source"])
        held_out |= set(squad[split]["context"])
    assert not texts & held_out
    # squad paragraphs enter sentence by sentence, so the first sentence of every test paragraph must be absent too
    first_sentences = {p.split(". ")[0].strip() for p in squad["test"]["context"]}
    assert not texts & first_sentences
