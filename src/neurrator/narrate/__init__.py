"""neurrator.narrate: predicted patches → sentences, and true frames → reference captions.

Narrators (``NARRATORS``): ``llava`` (frozen LLaVA-1.5, patch injection), ``retrieval`` and
``retrieval+lm`` (offline stand-ins over a caption bank of training frames).
Captioners (``CAPTIONERS``): ``bundled``, ``json``, ``blip2``, ``llava``.

Everyone who needs a narrator asks :func:`build_narrator`; a run's caption bank comes from
:func:`~neurrator.narrate.bank.build_caption_bank` (the one rule for what a bank may hold).
What a narrator said is saved as :class:`~neurrator.narrate.narrations.Narrations`.

Heavy libraries (transformers) are imported only when a model is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from neurrator.core.lazy import lazy_exports

if TYPE_CHECKING:
    from neurrator.narrate.bank import CaptionBank
    from neurrator.narrate.base import Captioner, Narrator
    from neurrator.narrate.config import NarrateConfig


def build_narrator(config: NarrateConfig, *, name: str | None = None, bank: CaptionBank | None = None) -> Narrator:
    """The narrator ``name`` (default ``config.narrator``) with the options of ``config``;
    the retrieval narrators (:data:`~neurrator.narrate.bank.CAPTION_BANK_NARRATORS`) need ``bank``."""
    from neurrator.narrate.base import NARRATORS  # registers the built-in backends

    if name is not None:
        config = config.model_copy(update={"narrator": name})
    return NARRATORS.create(config.narrator, config=config, bank=bank)


def build_captioner(config: NarrateConfig, stimulus: Any) -> Captioner:
    """The reference captioner named by ``config.captioner`` (``stimulus``: a ``data.types.Stimulus``)."""
    from neurrator.narrate.base import CAPTIONERS  # registers the built-in backends

    return CAPTIONERS.create(config.captioner, config=config, stimulus=stimulus)


_EXPORTS = {
    "CAPTIONERS": "neurrator.narrate.base",
    "NARRATORS": "neurrator.narrate.base",
    "Captioner": "neurrator.narrate.base",
    "Narrator": "neurrator.narrate.base",
    "DEFAULT_PROMPT": "neurrator.narrate.config",
    "NarrateConfig": "neurrator.narrate.config",
    "LlavaNarrator": "neurrator.narrate.llava",
    "injected_patches": "neurrator.narrate.llava",
    "load_llava": "neurrator.narrate.llava",
    "CAPTION_BANK_NARRATORS": "neurrator.narrate.bank",
    "CaptionBank": "neurrator.narrate.bank",
    "build_caption_bank": "neurrator.narrate.bank",
    "NarratorInfo": "neurrator.narrate.narrations",
    "Narrations": "neurrator.narrate.narrations",
    "RetrievalNarrator": "neurrator.narrate.retrieval",
    "similarity": "neurrator.narrate.retrieval",
    "RetrievalLMNarrator": "neurrator.narrate.retrieval_lm",
    "load_language_model": "neurrator.narrate.retrieval_lm",
    "one_sentence": "neurrator.narrate.retrieval_lm",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["CAPTIONERS", "CAPTION_BANK_NARRATORS", "DEFAULT_PROMPT", "NARRATORS", "CaptionBank", "Captioner", "LlavaNarrator", "NarrateConfig", "Narrations", "Narrator", "NarratorInfo", "RetrievalLMNarrator", "RetrievalNarrator", "build_caption_bank", "build_captioner", "build_narrator", "injected_patches", "load_language_model", "load_llava", "one_sentence", "similarity"]
