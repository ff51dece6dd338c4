"""Image corpora for the SAE and the neuron descriptions: captioned images with their patches.

The corpus is a user folder of images or a ``.npy`` array with optional captions
(``analysis.sae.corpus``), else the run's stimulus frames plus, beside a demo movie, the demo
scene bank embedded in the same vision space (:func:`build_corpus`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from neurrator.core.errors import InputError
from neurrator.data.stimulus import read_captions_json

if TYPE_CHECKING:
    from neurrator.analysis.config import SAEConfig
    from neurrator.data.types import Stimulus
    from neurrator.vision.base import PatchTargets
    from neurrator.vision.config import VisionConfig

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class Corpus:
    """Captioned images the SAE is trained on and labelled with.

    Attributes
    ----------
    patches : (n_images, n_patches, dim) vision-space features (float16/32; may be a memmap).
    captions : (n_images,) reference captions per image (may be empty lists).
    images : per image an (H, W) or (H, W, 3) uint8 array for thumbnails (an array or a list,
        sizes may differ), or ``None``.
    description : where the images came from.
    """

    patches: np.ndarray
    captions: list[list[str]]
    images: np.ndarray | list[np.ndarray] | None = None
    description: str = ""

    def pooled(self) -> np.ndarray:
        """(n_images, dim) patch-mean feature (read in chunks: the patches may be a memmap)."""
        from neurrator.core.linalg import pool_patches

        return pool_patches(self.patches)


def build_corpus(
    config: SAEConfig, vision: VisionConfig, stimulus: Stimulus, targets: PatchTargets, *, cache_dir: Path | None
) -> Corpus:
    """The SAE corpus: the user's (``config.corpus``), else the run's stimulus frames plus,
    beside a demo movie, the demo scene bank.

    The configured vision space (built only if images must be embedded) must be the one the
    run's ``targets`` come from: a user corpus in another space is an :class:`InputError`; the
    scene bank is then left out.
    """
    from neurrator.data.stimulus import load_stimulus
    from neurrator.vision import build_space

    if config.corpus is not None:
        space = build_space(vision)
        if space.info != targets.info:
            raise InputError(config.corpus, f"the configured vision space {space.info.space_id!r} is not the one "
                                            f"the run's targets come from ({targets.info.space_id!r})")
        images, captions = read_image_corpus(config.corpus, config.corpus_captions)
        patches = space.embed(images).numpy().astype(np.float16)
        return Corpus(patches, captions, images, f"user corpus {config.corpus} ({len(images)} images)")
    captions = [list(stimulus.captions.get(i, [])) for i in range(stimulus.n_frames)]
    description = f"{stimulus.name} frames ({stimulus.n_frames})"
    movie_only = Corpus(targets.patches, captions, stimulus.frames, description)
    if not stimulus.is_stand_in or stimulus.name == "natural_scenes":
        return movie_only
    space = build_space(vision)
    if space.info != targets.info:  # targets from elsewhere: the bank cannot be embedded alike
        return movie_only
    scenes = load_stimulus("natural_scenes", None, cache_dir=cache_dir)
    patches = space.embed(scenes.frames).numpy().astype(np.float16)
    return Corpus(
        np.concatenate([np.asarray(targets.patches, dtype=np.float16), patches]),
        captions + [list(scenes.captions.get(i, [])) for i in range(scenes.n_frames)],
        [*stimulus.frames, *scenes.frames],  # views, one per image (the sizes differ)
        f"{description} + demo scene bank ({scenes.n_frames} images)",
    )


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    image = image.astype(np.float64)
    if image.max() <= 1.0:
        image = image * 255.0
    return np.clip(image, 0, 255).astype(np.uint8)


def read_image_corpus(
    path: str | Path, captions_json: str | Path | None = None, *, size: int = 336
) -> tuple[np.ndarray, list[list[str]]]:
    """Read a corpus of images and their captions.

    Parameters
    ----------
    path : a folder of image files (sorted by name) or an ``.npy`` array (n, H, W[, 3]).
    captions_json : JSON object: image file name (folder) or index (array) → list of captions,
        read by the data layer's caption reader (``data.stimulus.read_captions_json``).
    size : folder images are resized to ``size × size`` so they stack into one array.

    Returns
    -------
    images : (n, H, W) or (n, H, W, 3) uint8.
    captions : (n,) list of captions per image (empty when unknown).
    """
    from skimage import io, transform

    path = Path(path)
    if path.suffix == ".npy":
        try:
            images = _to_uint8(np.load(path, allow_pickle=False))
        except (OSError, ValueError) as exc:
            raise InputError(path, f"not a readable .npy image array: {exc}") from None
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
            raise InputError(
                path, f"expected (n, H, W) or (n, H, W, 3) images, got shape {images.shape}"
            )
        keys = None
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(path, f"no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        loaded = []
        for f in files:
            try:
                image = io.imread(f)
            except (OSError, ValueError) as exc:
                raise InputError(f, f"unreadable image: {exc}") from None
            if image.ndim == 3 and image.shape[-1] == 4:
                image = image[..., :3]
            loaded.append(image)
        rgb = any(im.ndim == 3 for im in loaded)
        out = []
        for im in loaded:
            if rgb and im.ndim == 2:
                im = np.repeat(im[..., None], 3, axis=-1)
            resized = transform.resize(
                im, (size, size) + im.shape[2:], preserve_range=True, anti_aliasing=True
            )
            out.append(_to_uint8(resized if im.dtype != np.uint8 else np.round(resized)))
        images = np.stack(out)
        keys = [f.name for f in files]
    else:
        raise InputError(path, "SAE corpus must be a folder of images or an .npy array")
    captions: list[list[str]] = [[] for _ in images]
    if captions_json is not None:
        for i, texts in read_captions_json(Path(captions_json), len(images), names=keys).items():
            captions[i] = texts
    return images, captions
