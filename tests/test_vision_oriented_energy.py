"""The offline oriented-energy space: shape, determinism, and that its features mean what they say."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neurrator.data.stimulus import load_stimulus
from neurrator.vision import build_space
from neurrator.vision.base import VisionSpace
from neurrator.vision.config import VisionConfig
from neurrator.vision.oriented_energy import OrientedEnergySpace

N_ORI = 6
LUMINANCE, CONTRAST = 60, 62  # channel indices of patch luminance and contrast


@pytest.fixture(scope="module")
def space():
    return OrientedEnergySpace()


def grating(theta: float, wavelength: float, size: int = 336) -> np.ndarray:
    y, x = np.mgrid[:size, :size]
    u = x * math.cos(theta) + y * math.sin(theta)
    return (127.5 + 100 * np.cos(2 * np.pi * u / wavelength)).astype(np.uint8)


def test_default_backend_is_this_stand_in(space):
    built = build_space(VisionConfig())
    assert isinstance(built, OrientedEnergySpace) and isinstance(built, VisionSpace)
    info = built.info
    assert info.is_stand_in and info.grid == (24, 24) and info.n_patches == 576 and info.dim == 64
    assert "clip" not in info.space_id.lower() and "not a CLIP" in info.description


def test_shape_dtype_and_determinism(space):
    frames = np.random.default_rng(0).integers(0, 256, (5, 304, 608), dtype=np.uint8)
    a = space.embed(frames, batch_size=2)
    b = OrientedEnergySpace().embed(frames, batch_size=5)
    assert a.shape == (5, 576, 64) and a.dtype == torch.float32
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert torch.isfinite(a).all()


def test_rgb_frames_use_their_luminance(space):
    gray = np.random.default_rng(1).integers(0, 256, (2, 100, 120), dtype=np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    torch.testing.assert_close(space.embed(rgb), space.embed(gray), rtol=0, atol=1e-3)


@pytest.mark.parametrize("k", range(N_ORI))
def test_energy_peaks_at_the_gratings_orientation(space, k):
    theta = math.pi * k / N_ORI
    features = space.embed(grating(theta, wavelength=4.0)[None])[0]
    finest_scale = features[:, :N_ORI].mean(0)  # log-energy of scale 0, per orientation
    assert int(finest_scale.argmax()) == k


def test_energy_peaks_at_the_gratings_scale(space):
    for scale, wavelength in enumerate((4.0, 7.0, 14.0, 28.0)):
        features = space.embed(grating(0.0, wavelength)[None])[0]
        per_scale = features[:, : 4 * N_ORI].reshape(576, 4, N_ORI)[:, :, 0].mean(0)
        assert int(per_scale.argmax()) == scale


def test_luminance_and_contrast_are_local(space):
    frame = np.full((336, 336), 100, dtype=np.uint8)
    frame[14:28, 28:42] = 200  # exactly patch (row 1, col 2)
    features = space.embed(frame[None])[0].reshape(24, 24, 64)
    lum = features[..., LUMINANCE]
    assert lum[1, 2] > lum[0, 0] and torch.allclose(lum[10, 10], lum[0, 0])
    assert torch.allclose(features[..., CONTRAST], torch.zeros(24, 24), atol=1e-3)


def test_demo_shots_are_separable(space):
    movie = load_stimulus("natural_movie_one")
    starts = np.flatnonzero(np.r_[True, np.diff(movie.shot_of_frame) != 0])
    picks = np.concatenate([s + np.array([2, 14, 26, 38]) for s in starts])  # 4 frames per shot
    z = space.embed(movie.frames[picks]).flatten(1)
    distance = torch.cdist(z, z)
    shot = torch.from_numpy(movie.shot_of_frame[picks])
    same = (shot[:, None] == shot[None]) & ~torch.eye(len(z), dtype=torch.bool)
    assert distance[same].mean() < 0.7 * distance[shot[:, None] != shot[None]].mean()
    # Frames 12 apart in a fast pan can drift far; still, nearly every frame's nearest neighbour is in its shot.
    nearest = (distance + torch.eye(len(z)) * 1e9).argmin(1)
    assert (shot[nearest] == shot).float().mean() >= 0.85
