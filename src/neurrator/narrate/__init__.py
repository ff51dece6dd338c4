"""neurrator.narrate: predicted patches → sentences, and true frames → reference captions.

Narrators (``NARRATORS``): ``llava`` (frozen LLaVA-1.5, patch injection), ``retrieval`` and
``retrieval+lm`` (offline stand-ins over a caption bank of training frames).
Captioners (``CAPTIONERS``): ``bundled``, ``json``, ``blip2``, ``llava``.

Heavy libraries (transformers) are imported only when a model is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from neurrator.core.lazy import lazy_exports

if TYPE_CHECKING:
    from neurrator.narrate.base import Captioner, Narrator
    from neurrator.narrate.config import NarrateConfig
    from neurrator.narrate.retrieval import CaptionBank


def build_narrator(config: NarrateConfig, *, bank: CaptionBank | None = None) -> Narrator:
    """The narrator named by ``config.narrator``; retrieval narrators need ``bank``."""
    from neurrator.narrate.base import NARRATORS  # registers the built-in backends

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
    "CaptionBank": "neurrator.narrate.retrieval",
    "RetrievalNarrator": "neurrator.narrate.retrieval",
    "similarity": "neurrator.narrate.retrieval",
    "RetrievalLMNarrator": "neurrator.narrate.retrieval_lm",
    "load_language_model": "neurrator.narrate.retrieval_lm",
    "one_sentence": "neurrator.narrate.retrieval_lm",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["CAPTIONERS", "DEFAULT_PROMPT", "NARRATORS", "CaptionBank", "Captioner", "LlavaNarrator", "NarrateConfig", "Narrator", "RetrievalLMNarrator", "RetrievalNarrator", "build_captioner", "build_narrator", "injected_patches", "load_language_model", "load_llava", "one_sentence", "similarity"]
