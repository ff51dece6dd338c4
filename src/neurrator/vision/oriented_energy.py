"""The offline default vision space: multi-scale oriented energy on a ViT-L/14-336 patch grid.

This is a **stand-in**, not CLIP. No pretrained vision weights can be had offline, so the
encoder is trained against a deterministic, training-free featurizer that keeps the shape of
the real target (a 24 × 24 patch grid over the same 336 × 336 centre crop LLaVA-1.5 sees) and
the kind of information a V1-like front end carries:

* **Oriented energy** (complex cells): quadrature pairs of Gabor filters (even = cos, odd = sin)
  at 4 scales × 6 orientations, ``energy = even² + odd²``, averaged over each 14 × 14 patch.
  The pyramid shrinks the image about an octave per scale (336, 192, 96, 48 px), so one 11 × 11
  kernel covers wavelengths of 4, 7, 14 and 28 px of the 336 px crop.
* **Context**: the same energies averaged over the 3 × 3 patch neighbourhood.
* **Edge polarity** (simple cells): signed even-phase responses at the two coarsest scales,
  where a 14 px patch is smaller than a wavelength so the sign survives averaging.
* **Luminance and contrast**: mean and standard deviation of the pixels of each patch and of its
  neighbourhood.

Per patch that is 24 + 24 + 12 + 4 = 64 features. Energies are log-compressed and every group is
mapped by fixed constants (part of the space definition, listed below) to roughly unit scale, so
no channel dominates a mean-squared-error loss. Changing anything here must bump ``VERSION``:
the version is part of ``space_id`` and hence of the patch-target cache key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from neurrator.vision.base import VISION_SPACES, SpaceInfo

VERSION = "v1"

# Fixed per-group affine maps (x - centre) / spread, chosen once at design time so that each
# group is O(1) on natural photographs. They are constants of the space, not fitted to a run.
_LOG_ENERGY_CENTRE, _LOG_ENERGY_SPREAD = -6.0, 2.0
_EVEN_SPREAD = 0.05
_LUMINANCE_CENTRE, _LUMINANCE_SPREAD = 0.45, 0.25
_CONTRAST_SPREAD = 0.12
_ENERGY_FLOOR = 1e-5  # keeps log-energy finite in flat regions


def gabor_quadrature_bank(n_orientations: int, wavelength: float, size: int) -> torch.Tensor:
    """Zero-mean, unit-norm Gabor quadrature pairs.

    Returns
    -------
    (2 * n_orientations, 1, size, size) float32: even (cos) filters first, then odd (sin).
    """
    sigma = 0.56 * wavelength  # one-octave bandwidth
    r = (size - 1) / 2
    y, x = torch.meshgrid(torch.arange(size) - r, torch.arange(size) - r, indexing="ij")
    envelope = torch.exp(-(x**2 + y**2) / (2 * sigma**2))
    filters = []
    for phase in (torch.cos, torch.sin):
        for k in range(n_orientations):
            theta = math.pi * k / n_orientations
            u = x * math.cos(theta) + y * math.sin(theta)
            g = envelope * phase(2 * math.pi * u / wavelength)
            g = g - envelope * (g.sum() / envelope.sum())  # remove the DC response
            filters.append(g / g.norm())
    return torch.stack(filters)[:, None].float()


def to_grayscale(frames: np.ndarray) -> torch.Tensor:
    """(n, H, W) or (n, H, W, 3) uint8 → (n, 1, H, W) float32 in [0, 1]."""
    x = torch.from_numpy(np.array(frames, dtype=np.float32)) / 255.0  # a copy: frames may be read-only
    if x.ndim == 4:
        x = x[..., :3] @ torch.tensor([0.2125, 0.7154, 0.0721])  # Rec. 709 luma, as skimage
    elif x.ndim != 3:
        raise ValueError(f"frames must be (n, H, W) or (n, H, W, 3), got shape {tuple(frames.shape)}")
    return x[:, None]


def resize_and_centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shortest side to ``size`` (bilinear, antialiased) and centre-crop size × size.

    The same geometry as LLaVA-1.5's ``CLIPImageProcessor``, so patch (i, j) covers the same part
    of a frame here as in the CLIP space.
    """
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return x[..., top : top + size, left : left + size].clamp(0.0, 1.0)


@dataclass
class OrientedEnergySpace:
    """Deterministic multi-scale oriented-energy features on a 24 × 24 patch grid (a stand-in).

    Parameters
    ----------
    image_size : side of the centre crop, in pixels (336 as CLIP ViT-L/14-336).
    grid : patches per side (24 → 576 patches of 14 × 14 px).
    n_scales, n_orientations : size of the Gabor bank.
    wavelength : finest wavelength in pixels; each coarser scale doubles it.
    kernel_size : side of every Gabor kernel (the pyramid keeps it fixed across scales).

    Attributes
    ----------
    info : ``SpaceInfo`` with ``dim = 2 * n_scales * n_orientations + 2 * n_orientations + 4``
        (64 by default) and ``is_stand_in=True``.

    Examples
    --------
    >>> space = OrientedEnergySpace()
    >>> space.embed(np.zeros((2, 304, 608), np.uint8)).shape
    torch.Size([2, 576, 64])
    """

    image_size: int = 336
    grid: int = 24
    n_scales: int = 4
    n_orientations: int = 6
    wavelength: float = 4.0
    kernel_size: int = 11
    info: SpaceInfo = field(init=False)

    def __post_init__(self) -> None:
        if self.image_size % self.grid:
            raise ValueError("image_size must be a multiple of grid")
        self._bank = gabor_quadrature_bank(self.n_orientations, self.wavelength, self.kernel_size)
        n_energy = self.n_scales * self.n_orientations
        dim = 2 * n_energy + 2 * self.n_orientations + 4
        self.info = SpaceInfo(
            space_id=(
                f"oriented-energy-{VERSION}-s{self.image_size}-g{self.grid}-"
                f"{self.n_scales}x{self.n_orientations}-w{self.wavelength:g}-k{self.kernel_size}"
            ),
            grid=(self.grid, self.grid),
            dim=dim,
            layer="gabor-energy-pyramid",
            is_stand_in=True,
            description=(
                f"Offline stand-in for CLIP: training-free multi-scale oriented energy "
                f"({self.n_scales} scales × {self.n_orientations} orientations) + luminance and contrast "
                f"per 14 px patch, {self.grid}×{self.grid} grid × {dim}; not a CLIP embedding."
            ),
        )

    @property
    def patch_size(self) -> int:
        return self.image_size // self.grid

    # ---- features ------------------------------------------------------------------------
    def _levels(self) -> list[tuple[int, int]]:
        """(side in px, conv stride) of each pyramid level.

        Level sides shrink by about an octave (336, 192, 96, 48 by default, i.e. wavelengths of
        4, 7, 14 and 28 px at 336 px) and are chosen so that every conv output is a whole multiple
        of the grid: pooling is then an exact average over each patch. Fine levels use stride 2,
        at which the smooth energy envelope is still sampled densely enough.
        """
        levels = []
        for scale in range(self.n_scales):
            target = self.image_size / 2**scale
            if target / 2 >= 2 * self.grid:  # stride 2 still leaves >= 2 samples per patch side
                side, stride = 2 * self.grid * max(1, round(target / (2 * self.grid))), 2
            else:
                side, stride = self.grid * max(1, round(target / self.grid)), 1
            levels.append((side, stride))
        return levels

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 1, S, S) float32 crop in [0, 1] → (n, dim, grid, grid) features."""
        g, o = self.grid, self.n_orientations
        pad = self.kernel_size // 2
        centred = x - x.mean(dim=(-2, -1), keepdim=True)  # the Gabors are zero-mean; this only aids precision
        energies, polarities = [], []
        for scale, (side, stride) in enumerate(self._levels()):
            level = centred if side == x.shape[-1] else F.interpolate(
                centred, size=(side, side), mode="bilinear", antialias=True, align_corners=False
            )
            response = F.conv2d(F.pad(level, (pad,) * 4, mode="reflect"), self._bank, stride=stride)
            pool = response.shape[-1] // g
            if scale >= self.n_scales - 2:
                polarities.append(F.avg_pool2d(response[:, :o], pool))
            # Pooling is linear, so pool the squares first and add the quadrature pair after.
            pooled = F.avg_pool2d(response.square_(), pool)
            energies.append(pooled[:, :o] + pooled[:, o:])
        log_energy = (torch.log(torch.cat(energies, 1) + _ENERGY_FLOOR) - _LOG_ENERGY_CENTRE) / _LOG_ENERGY_SPREAD
        context = F.avg_pool2d(log_energy, 3, stride=1, padding=1, count_include_pad=False)
        polarity = torch.cat(polarities, 1) / _EVEN_SPREAD
        p = self.patch_size
        mean = F.avg_pool2d(x, p)
        std = (F.avg_pool2d(x**2, p) - mean**2).clamp_min(0).sqrt()
        luminance = torch.cat([mean, F.avg_pool2d(mean, 3, stride=1, padding=1, count_include_pad=False)], 1)
        contrast = torch.cat([std, F.avg_pool2d(std, 3, stride=1, padding=1, count_include_pad=False)], 1)
        return torch.cat(
            [
                log_energy,
                context,
                polarity,
                (luminance - _LUMINANCE_CENTRE) / _LUMINANCE_SPREAD,
                contrast / _CONTRAST_SPREAD,
            ],
            1,
        )

    @torch.no_grad()
    def embed(self, frames: np.ndarray, *, batch_size: int = 32, progress: bool = False) -> torch.Tensor:
        """Embed frames.

        Parameters
        ----------
        frames : (n_frames, height, width) uint8 grayscale or (n_frames, height, width, 3) uint8 RGB.

        Returns
        -------
        (n_frames, 576, 64) float32 tensor (with the default grid and bank).
        """
        out = torch.empty(len(frames), self.info.n_patches, self.info.dim)
        starts = range(0, len(frames), batch_size)
        for start in tqdm(starts, desc="oriented-energy", unit="batch", disable=not progress):
            x = resize_and_centre_crop(to_grayscale(frames[start : start + batch_size]), self.image_size)
            features = self._features(x)
            out[start : start + len(x)] = features.flatten(2).transpose(1, 2)
        return out

    @classmethod
    def from_config(cls, config=None) -> OrientedEnergySpace:
        """Build from a :class:`~neurrator.vision.config.VisionConfig` (this space has no options there)."""
        return cls()


VISION_SPACES.register("oriented-energy")(OrientedEnergySpace.from_config)
