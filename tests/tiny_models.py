"""Tiny CLIP, LLaVA and BLIP-2 models built from configs with random weights and saved with
``save_pretrained``, so tests load them back through the same ``from_pretrained`` path a user's
hub id or local folder takes (no real weights exist offline).

The LLaVA's vision tower is a CLIP ViT (28 px images, 7 px patches: 4 × 4 patches of width
16), and :func:`save_tiny_clip` saves that very tower as a CLIP vision checkpoint, as the paper
pairs CLIP ViT-L/14-336 targets with LLaVA-1.5 (whose tower it is).
"""

from __future__ import annotations

from pathlib import Path

import torch

LLAVA_WORDS = "USER ASSISTANT : Describe this scene in one sentence . a the car dog room dark tree road person sits parked".split()
BLIP2_WORDS = ["a", "the", "car", "dog", "room", "dark", "tree", "road", "person", "sits", "stands", "parked"]
IMAGE, PATCH, WIDTH = 28, 7, 16


def word_tokenizer(words: list[str], *, decoder: bool = True):
    """A word-level fast tokenizer with an ``<image>`` token, built without any download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<unk>", "<pad>", "<s>", "</s>", "<image>", *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    if decoder:
        backend.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )


def _vision_config():
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=WIDTH, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                            image_size=IMAGE, patch_size=PATCH)


def save_tiny_llava(folder: Path) -> Path:
    """A tiny LLaVA-1.5-style model and processor in ``folder``."""
    from transformers import CLIPImageProcessor, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tokenizer = word_tokenizer(LLAVA_WORDS)
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, pad_token_id=1, bos_token_id=2, eos_token_id=3,
    )
    config = LlavaConfig(
        vision_config=_vision_config(), text_config=text, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2, vision_feature_select_strategy="default",
    )
    # A wide initialisation makes the tiny random LM sensitive to its image tokens.
    config.text_config.initializer_range = 0.5
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE}),
        tokenizer=tokenizer, patch_size=PATCH, vision_feature_select_strategy="default", num_additional_image_tokens=1,
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def save_tiny_clip(llava_folder: Path, folder: Path) -> Path:
    """The tiny LLaVA's own vision tower as a CLIP vision checkpoint (+ its image processor)."""
    from transformers import CLIPImageProcessor, LlavaForConditionalGeneration

    llava = LlavaForConditionalGeneration.from_pretrained(llava_folder)
    folder.mkdir(parents=True, exist_ok=True)
    llava.model.vision_tower.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE}).save_pretrained(folder)
    return folder


def save_tiny_blip2(folder: Path) -> Path:
    """A tiny BLIP-2 (OPT) captioner and processor in ``folder``."""
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        Blip2QFormerConfig,
        Blip2VisionConfig,
        BlipImageProcessor,
        OPTConfig,
    )

    tokenizer = word_tokenizer(BLIP2_WORDS, decoder=False)
    n = len(tokenizer)
    config = Blip2Config(
        vision_config=Blip2VisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                        image_size=IMAGE, patch_size=PATCH),
        qformer_config=Blip2QFormerConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                          encoder_hidden_size=16, vocab_size=n),
        text_config=OPTConfig(vocab_size=n, hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2,
                              max_position_embeddings=64, word_embed_proj_dim=16, pad_token_id=1, bos_token_id=2,
                              eos_token_id=3, init_std=0.5),
        num_query_tokens=4, image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    Blip2ForConditionalGeneration(config).eval().save_pretrained(folder)
    Blip2Processor(image_processor=BlipImageProcessor(size={"height": IMAGE, "width": IMAGE}), tokenizer=tokenizer,
                   num_query_tokens=4).save_pretrained(folder)
    return folder
