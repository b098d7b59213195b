"""count_truncated tokenizes only the passages that can exceed the limit, and counts exactly."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.points import count_truncated


CORPUS = [
    "manage staff: plan, direct and evaluate the work of employees",
    "Python (computer programming): techniques and principles of software development",
    "Mitarbeiter führen: die Arbeit von Beschäftigten planen, leiten und bewerten",
    "gérer le personnel, planifier le travail",
    "صلى الله عليه وسلم",  # what NFKC makes of ﷺ, so that it tokenizes into pieces, not one <unk>
] * 20


def _trained(kind: str):
    """A tokenizer of the real model's family (Unigram, NFKC, metaspace: XLM-R) or of GPT-2's (byte-level
    BPE), trained here on a few sentences."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if kind == "unigram-nfkc":
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=120, special_tokens=["<s>", "</s>", "<unk>"], unk_token="<unk>")
    else:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
    return tok


@pytest.fixture(scope="module", params=["minilm-wordpiece", "unigram-nfkc", "bytelevel-bpe"])
def counter(request, encoder):
    """token_counts(texts, prompt) of one tokenizer family."""
    if request.param == "minilm-wordpiece":
        return encoder.token_counts
    tok = _trained(request.param)
    return lambda texts, prompt="": [len(e.ids) for e in tok.encode_batch([prompt + t for t in texts])]


@dataclass
class _Limited:
    """An encoder's tokenizer with a small token limit; counts the texts it is asked to tokenize."""

    counts: object
    max_seq_length: int
    passage_prompt: str = "passage: "
    asked: int = 0

    def token_counts(self, texts, prompt=""):
        self.asked += len(texts)
        return self.counts(texts, prompt)


def _exact(enc: _Limited, texts: list[str]) -> int:
    return sum(1 for n in enc.counts(texts, enc.passage_prompt) if n > enc.max_seq_length)


# Text that tokenizes to more pieces than it has characters: NFKC expands ﷺ (3 bytes) to 18 letters,
# ¼ to 1⁄4; CJK, emoji and digits split into many pieces.
TRICKY = ["ﷺ" * 6, "¼ ½ ¾ " * 5, "技能 管理 数据 " * 4, "🙂🚀" * 10, "1234567890" * 5, "a b c d e f g h i j k"]


@pytest.mark.parametrize("limit", [8, 12, 16, 24, 40, 64])
def test_equals_the_exact_count(counter, limit):
    enc = _Limited(counter, limit)
    texts = TRICKY + ["Python", "manage staff: plan, direct and evaluate the work of employees"] * 3
    assert count_truncated(enc, texts) == _exact(enc, texts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(min_size=0, max_size=60), min_size=1, max_size=8), limit=st.integers(8, 48))
def test_equals_the_exact_count_on_any_text(counter, texts, limit):
    enc = _Limited(counter, limit)
    assert count_truncated(enc, texts) == _exact(enc, texts)


def test_short_passages_are_not_tokenized(counter):
    enc = _Limited(counter, 512)
    assert count_truncated(enc, ["manage staff: plan and direct the work of employees"] * 100) == 0
    assert enc.asked == 0
    long = "word " * 600
    assert count_truncated(enc, [long, "short"]) == 1 and enc.asked == 1
