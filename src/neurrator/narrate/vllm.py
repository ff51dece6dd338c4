"""GPU narration at scale: LLaVA-1.5 served by vLLM, fed precomputed image embeddings.

The transformers narrator (:mod:`neurrator.narrate.llava`) swaps the vision tower's output for
the predicted patches and lets LLaVA's projector and language model run. vLLM serves the same
model but accepts *precomputed image embeddings* — the projector's output, shaped
(num_items, feature_size, hidden size of the LM) — when started with ``enable_mm_embeds=True``
(vLLM docs, "Multimodal inputs → Embedding inputs"). So this backend runs the one piece in
between itself, with LLaVA's own weights::

    predicted patches (n, 576, 1024)                       CLIP ViT-L/14-336 penultimate layer, no CLS
      └─ [CLS slot = mean patch, only under the "full" feature strategy; dropped by "default"]
      └─ LlavaMultiModalProjector (transformers' class, the checkpoint's weights)
                                   → (n, 576, 4096)         LLaVA-1.5-7B's LM hidden size
      └─ vllm.LLM(model, enable_mm_embeds=True).generate(
             [{"prompt": "USER: <image>\\n…", "multi_modal_data": {"image": (1, 576, 4096)}}, ...],
             SamplingParams(temperature=0, max_tokens=60))   greedy, as the paper

Windows are sent in batches (``batch_size`` requests per ``generate`` call; vLLM schedules them
continuously). With ``vllm_workers > 1`` a Ray actor pool shards the batches across GPUs: each
actor holds one engine on ``vllm_gpus_per_worker`` GPUs (tensor parallel, its GPU workers
processes of the actor: :func:`engine_args`), projects its own
batches and returns sentences in input order.

Only the projector's tensors are read from the checkpoint (``safetensors.safe_open``), so the
driver never loads the 7 B model. vLLM is an optional extra (``pip install 'neurrator[vllm]'``);
nothing here imports it before a narrator is built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from neurrator.core.errors import InputError, NeurratorError
from neurrator.narrate.base import NARRATORS
from neurrator.narrate.config import DEFAULT_PROMPT, NarrateConfig

PROJECTOR_PREFIXES = ("model.multi_modal_projector.", "multi_modal_projector.")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# ---------------------------------------------------------------------------------------------
# The projector: LLaVA's own module and weights, nothing else of the model
# ---------------------------------------------------------------------------------------------


def _checkpoint_file(model: str | Path, filename: str) -> Path | None:
    """A file of a local model directory or a hub repo (downloaded into the HF cache); ``None``
    if the checkpoint has no such file."""
    local = Path(model)
    if local.is_dir():
        return local / filename if (local / filename).is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(str(model), filename))
    except EntryNotFoundError:
        return None


def load_projector(model: str | Path, *, dtype: str = "float32", device: str = "cpu") -> tuple[torch.nn.Module, Any]:
    """LLaVA's ``LlavaMultiModalProjector`` with the checkpoint's weights, and the LLaVA config.

    ``model``: hub id or local directory of a LLaVA-1.5-family checkpoint (single
    ``model.safetensors`` or sharded with ``model.safetensors.index.json``). Reads only the
    projector's tensors; both the transformers-5 (``model.multi_modal_projector.*``) and the
    original (``multi_modal_projector.*``) key layouts work.
    """
    from safetensors import safe_open
    from transformers import LlavaConfig
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    try:
        config = LlavaConfig.from_pretrained(str(model))
    except OSError as exc:
        raise InputError(model, f"cannot read a LLaVA config (hub id or local directory): {exc}") from None
    index = _checkpoint_file(model, "model.safetensors.index.json")
    if index is not None:
        weight_map = json.loads(index.read_text())["weight_map"]
        shards = sorted({f for k, f in weight_map.items() if k.startswith(PROJECTOR_PREFIXES)})
    else:
        shards = ["model.safetensors"]
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        path = _checkpoint_file(model, shard)
        if path is None:
            raise InputError(model, f"checkpoint file {shard} is missing")
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                prefix = next((p for p in PROJECTOR_PREFIXES if key.startswith(p)), None)
                if prefix is not None:
                    state[key[len(prefix):]] = f.get_tensor(key)
    projector = LlavaMultiModalProjector(config)
    try:
        projector.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(model, f"the checkpoint's multimodal projector does not fit its config: {exc}") from None
    return projector.to(device=device, dtype=_DTYPES[dtype]).eval(), config


@torch.no_grad()
def project_patches(projector: torch.nn.Module, config: Any, patches: torch.Tensor) -> torch.Tensor:
    """Predicted tower patches (n, n_patches, vision dim) → LM-space image embeddings
    (n, feature_size, LM hidden size), exactly as LLaVA's ``get_image_features`` would turn the
    tower's hidden state into them: with the ``"full"`` strategy a CLS slot (the mean patch, as
    :func:`neurrator.narrate.llava.injected_patches` fills it) is kept in front."""
    layer = config.vision_feature_layer
    if not isinstance(layer, int):
        raise InputError(None, f"projecting patches needs a single vision_feature_layer, the model uses {layer}")
    vision = config.vision_config
    grid = (vision.image_size // vision.patch_size) ** 2
    if patches.ndim != 3 or tuple(patches.shape[1:]) != (grid, vision.hidden_size):
        raise InputError(None, f"patches of shape {tuple(patches.shape)} do not fit this LLaVA's vision tower, which "
                               f"gives (n, {grid}, {vision.hidden_size}): was the encoder trained on another space?")
    param = next(projector.parameters())
    x = patches.to(device=param.device, dtype=param.dtype)
    if config.vision_feature_select_strategy == "full":
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)
    return projector(x)


def build_requests(prompt: str, embeds: torch.Tensor, *, image_token: str = "<image>") -> list[dict]:
    """One vLLM request per window: ``{"prompt": prompt, "multi_modal_data": {"image":
    (1, feature_size, hidden) tensor}}`` (the prompt holds the image placeholder once; vLLM
    expands it to ``feature_size`` tokens). Tensors go to CPU (vLLM moves them)."""
    if prompt.count(image_token) != 1:
        raise InputError(None, f"the narrator prompt must contain {image_token!r} exactly once: {prompt!r}")
    if embeds.ndim != 3:
        raise InputError(None, f"image embeddings must be (n, feature_size, hidden), got {tuple(embeds.shape)}")
    cpu = embeds.detach().cpu()
    return [{"prompt": prompt, "multi_modal_data": {"image": cpu[i : i + 1]}} for i in range(cpu.shape[0])]


def engine_args(model: str | Path, *, dtype: str, tensor_parallel_size: int = 1, max_model_len: int = 2048,
                gpu_memory_utilization: float = 0.9) -> dict:
    """Keyword arguments of ``vllm.LLM``: image embeddings enabled (``enable_mm_embeds``), one
    image per prompt. With tensor parallelism the engine's GPU workers are processes
    (``distributed_executor_backend="mp"``): inside a Ray actor, vLLM's Ray executor cannot find
    the actor's placement group from its engine subprocess (vllm-project/vllm#30016), while
    processes inherit the GPUs Ray gave the actor."""
    args = {"model": str(model), "enable_mm_embeds": True, "dtype": dtype, "tensor_parallel_size": tensor_parallel_size,
            "max_model_len": max_model_len, "gpu_memory_utilization": gpu_memory_utilization,
            "limit_mm_per_prompt": {"image": 1}}
    if tensor_parallel_size > 1:
        args["distributed_executor_backend"] = "mp"
    return args


def shard(n: int, batch_size: int) -> list[slice]:
    """Consecutive batches covering ``range(n)``."""
    return [slice(lo, min(lo + batch_size, n)) for lo in range(0, n, batch_size)]


# ---------------------------------------------------------------------------------------------
# One engine (a process, or a Ray actor on its GPUs)
# ---------------------------------------------------------------------------------------------


class VLLMEngine:
    """A vLLM engine serving a LLaVA-1.5 model with image embeddings enabled, and its projector."""

    def __init__(self, model: str, *, prompt: str, max_new_tokens: int, dtype: str, tensor_parallel_size: int = 1,
                 max_model_len: int = 2048, gpu_memory_utilization: float = 0.9):
        try:
            from vllm import LLM, SamplingParams
        except ImportError:
            raise NeurratorError("narrate.narrator=vllm needs vLLM on a CUDA machine: pip install 'neurrator[vllm]'") from None
        self.prompt = prompt
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.projector, self.config = load_projector(model, dtype=dtype, device=device)
        self.llm = LLM(**engine_args(model, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                                     max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization))
        self.sampling = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)

    def narrate(self, patches: torch.Tensor) -> list[str]:
        """(n, n_patches, dim) → n sentences, in order."""
        requests = build_requests(self.prompt, project_patches(self.projector, self.config, torch.as_tensor(patches)))
        outputs = self.llm.generate(requests, self.sampling, use_tqdm=False)
        return [o.outputs[0].text.strip() for o in outputs]


class VLLMNarrator:
    """Narrate predicted patches with LLaVA-1.5 served by vLLM (the paper's narrator, on GPUs).

    Parameters
    ----------
    model : hub id or local directory of a LLaVA-1.5-family model.
    prompt, max_new_tokens : as the transformers narrator (greedy decoding).
    batch_size : windows per ``generate`` call (and per actor task).
    workers : engines; ``> 1`` starts a Ray actor pool (``ray.init()`` unless Ray is already
        connected), one engine per actor, each on ``gpus_per_worker`` GPUs.
    engine : the engine class (:class:`VLLMEngine`; tests pass a stand-in with the same
        constructor and ``narrate``).
    """

    name = "vllm"
    is_stand_in = False

    def __init__(self, model: str, *, prompt: str = DEFAULT_PROMPT, max_new_tokens: int = 60, dtype: str = "float16",
                 batch_size: int = 64, workers: int = 1, gpus_per_worker: int = 1, max_model_len: int = 2048,
                 engine: type = VLLMEngine):
        self.model_id, self.batch_size, self.workers = str(model), batch_size, workers
        kwargs = {"prompt": prompt, "max_new_tokens": max_new_tokens, "dtype": dtype,
                  "tensor_parallel_size": gpus_per_worker, "max_model_len": max_model_len}
        if workers > 1:
            import ray

            if not ray.is_initialized():
                ray.init(include_dashboard=False)
            actor = ray.remote(num_gpus=gpus_per_worker)(engine)
            self.pool = ray.util.ActorPool([actor.remote(self.model_id, **kwargs) for _ in range(workers)])
            self.engine = None
        else:
            self.pool, self.engine = None, engine(self.model_id, **kwargs)
        self.description = (f"{self.model_id} served by vLLM with predicted patches projected by its own multimodal "
                            f"projector and passed as image embeddings (greedy; {workers} engine(s))")

    def narrate(self, patches: torch.Tensor, *, progress: bool = False) -> list[str]:
        patches = torch.as_tensor(patches)
        batches = [patches[s] for s in shard(patches.shape[0], self.batch_size)]
        from tqdm.auto import tqdm

        if self.pool is None:
            return [s for batch in tqdm(batches, desc="vllm narration", disable=not progress)
                    for s in self.engine.narrate(batch)]
        results = self.pool.map(lambda actor, batch: actor.narrate.remote(batch), batches)  # in input order
        return [s for part in tqdm(results, total=len(batches), desc="vllm narration", disable=not progress)
                for s in part]


@NARRATORS.register("vllm")
def _make_vllm(config: NarrateConfig, bank: object | None = None) -> VLLMNarrator:
    return VLLMNarrator(config.llava_model, prompt=config.prompt, max_new_tokens=config.max_new_tokens,
                        dtype=config.dtype, batch_size=config.batch_size, workers=config.vllm_workers,
                        gpus_per_worker=config.vllm_gpus_per_worker)
