"""Config section for binning, z-scoring, windows, splits and unit subsets."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Leakage-free splits, plus the paper's leaky definitions under explicit ``*_paper`` names
#: (see :mod:`neurrator.preprocess.splits`; never the default).
SplitName = Literal["repeats", "sparse_random", "contiguous_middle", "front_only", "scene_identity",
                    "sparse_random_paper", "contiguous_middle_paper", "front_only_paper"]


class PreprocessConfig(BaseModel):
    """Options for binning, z-scoring, windows, splits and unit subsets.

    The defaults follow the paper: 120 Hz bins (4 per 33 ms movie frame), 20-bin windows
    (167 ms), z-scoring with statistics of the training samples only.
    """

    model_config = ConfigDict(extra="forbid")
    bin_rate: float = Field(120.0, gt=0)
    window: int = Field(20, ge=2)
    #: Bins per natural-scenes presentation (250 ms at 120 Hz). The window is centred in it.
    scene_bins: int = Field(30, ge=2)
    #: The split the dataset is z-scored with and that training uses; all are written anyway.
    split: SplitName = "repeats"
    split_seed: int = 0
    #: Fraction of repeats (or of scene presentations) held out for validation / test.
    val_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.1, gt=0, lt=1)
    #: Fraction of frames held out by ``sparse_random``, and of images by ``scene_identity``.
    heldout_frame_fraction: float = Field(0.1, gt=0, lt=1)
    #: Unit subset the dataset keeps (see :mod:`neurrator.preprocess.subsets` for the grammar).
    subset: str = "all"
    #: Refuse a pseudo-mouse session whose frame timing differs from the first by more than this
    #: many bins.
    max_alignment_error_bins: float = Field(1.0, gt=0)
