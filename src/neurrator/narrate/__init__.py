"""neurrator.narrate: predicted patches → sentences, and true frames → reference captions.

Narrators (``NARRATORS``): ``llava`` (frozen LLaVA-1.5, patch injection), ``retrieval`` and
``retrieval+lm`` (offline stand-ins over a caption bank of training frames).
Captioners (``CAPTIONERS``): ``bundled``, ``json``, ``blip2``, ``llava``.

Heavy libraries (transformers) are imported only when a model is loaded.
"""

from __future__ import annotations

from typing import Any

from neurrator.narrate import captioners, llava, retrieval, retrieval_lm  # noqa: F401  (register backends)
from neurrator.narrate.base import CAPTIONERS, NARRATORS, Captioner, Narrator
from neurrator.narrate.config import DEFAULT_PROMPT, NarrateConfig
from neurrator.narrate.llava import LlavaNarrator, injected_patches, load_llava
from neurrator.narrate.retrieval import CaptionBank, RetrievalNarrator, similarity
from neurrator.narrate.retrieval_lm import RetrievalLMNarrator, load_language_model, one_sentence


def build_narrator(config: NarrateConfig, *, bank: CaptionBank | None = None) -> Narrator:
    """The narrator named by ``config.narrator``; retrieval narrators need ``bank``."""
    return NARRATORS.create(config.narrator, config=config, bank=bank)


def build_captioner(config: NarrateConfig, stimulus: Any) -> Captioner:
    """The reference captioner named by ``config.captioner`` (``stimulus``: a ``data.types.Stimulus``)."""
    return CAPTIONERS.create(config.captioner, config=config, stimulus=stimulus)


__all__ = [
    "CAPTIONERS",
    "DEFAULT_PROMPT",
    "NARRATORS",
    "CaptionBank",
    "Captioner",
    "LlavaNarrator",
    "NarrateConfig",
    "Narrator",
    "RetrievalLMNarrator",
    "RetrievalNarrator",
    "build_captioner",
    "build_narrator",
    "injected_patches",
    "load_language_model",
    "load_llava",
    "one_sentence",
    "similarity",
]
