"""Stimulus frames and their reference captions.

Two sources, one entry point (:func:`load_stimulus`):

* **Allen templates** (``stimulus_dir`` given): ``natural_movie_one.npy``-style arrays
  (900 × 304 × 608 uint8 for natural_movie_one, 3600 × 304 × 608 for natural_movie_three) and
  ``natural_scene_<i>.tiff`` images (118 × 918 × 1174 uint8), as AllenSDK caches them.
  Captions come from a user JSON (frame → list of captions), if given.
* **Embedded demo** (``stimulus_dir=None``): an offline stand-in rendered deterministically at
  first use from real photographs shipped inside scikit-image and scikit-learn. The camera
  geometry of every shot and the hand-written captions of what is visible in it live together in
  the versioned data file ``stimulus_data/demo_stimuli_v1.json``, so a caption can never drift
  away from the pixels it describes.

  - ``natural_movie_one``: 900 frames, 304 × 608, 30 fps, 16 shots with pans, zooms and cuts.
  - ``natural_movie_three``: 3600 frames of the same kind (44 shots reusing the same photo
    library with different cuts and timings; ~665 MB in memory).
  - ``natural_scenes``: a bank of 24 distinct images (459 × 587, half the Allen resolution),
    frame index = image index, ``frame_rate=None``.

  Every demo :class:`~neurrator.data.types.Stimulus` has ``is_stand_in=True``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from neurrator.core.errors import InputError
from neurrator.core.io import atomic_path, atomic_write_json
from neurrator.data.types import MOVIE_STIMULI, SCENE_STIMULI, Session, Stimulus

#: The bundled demo-stimulus definition (camera paths + captions). Bump the file name to change it.
DEMO_DATA_FILE = "demo_stimuli_v1.json"

#: File names AllenSDK and users give the movie templates.
_MOVIE_TEMPLATE_NAMES = {
    "natural_movie_one": ("natural_movie_one.npy", "natural_movie_1.npy"),
    "natural_movie_three": ("natural_movie_three.npy", "natural_movie_3.npy"),
}
_SCENE_FILE = re.compile(r"^natural_scene_(\d+)\.tiff?$")


# ---- public entry point -------------------------------------------------------------------
def load_stimulus(
    name: str,
    stimulus_dir: Path | None = None,
    captions_json: Path | None = None,
    *,
    cache_dir: Path | None = None,
) -> Stimulus:
    """Load the frames and reference captions of one stimulus.

    Parameters
    ----------
    name : ``"natural_movie_one"``, ``"natural_movie_three"`` or ``"natural_scenes"``.
    stimulus_dir : folder with the Allen templates; ``None`` renders the embedded demo stimulus.
    captions_json : JSON file ``{"<frame>": ["caption", ...], ...}``. Replaces the bundled demo
        captions, or supplies captions for Allen templates (which otherwise have none).
    cache_dir : optional folder to memoise rendered demo frames in (keyed by the data version).

    Returns
    -------
    Stimulus with ``frames`` (n_frames, height, width) uint8 grayscale.
    """
    if name not in MOVIE_STIMULI + SCENE_STIMULI:
        raise InputError(None, f"unknown stimulus {name!r}; choose one of {MOVIE_STIMULI + SCENE_STIMULI}")
    if stimulus_dir is None:
        stimulus = load_demo_stimulus(name, cache_dir=cache_dir)
    elif name in SCENE_STIMULI:
        stimulus = load_allen_scenes(Path(stimulus_dir))
    else:
        stimulus = load_allen_movie(Path(stimulus_dir), name)
    if captions_json is not None:
        stimulus = _replace_captions(stimulus, read_captions_json(Path(captions_json), stimulus.n_frames))
    return stimulus


# ---- matching frames to the recording ------------------------------------------------------
#: Frame size (height, width) of the Allen Brain Observatory templates (FACTS §2): the movies
#: are 304 × 608, the natural scenes 918 × 1174. The NWB does not hold frames, so a template's
#: size is checked against these.
ALLEN_FRAME_SIZES: dict[str, tuple[int, int]] = {
    "natural_movie_one": (304, 608),
    "natural_movie_three": (304, 608),
    "natural_scenes": (918, 1174),
}


def choose_stimulus_dir(stimulus_dir: Path | None, *, recorded: bool, allow_demo: bool) -> Path | None:
    """The stimulus folder to load, refusing to pair recordings with the embedded demo silently.

    Parameters
    ----------
    stimulus_dir : ``data.stimulus_dir`` (``None`` = the embedded demo stimulus).
    recorded : True when the sessions are recordings (``data.source == "nwb"``), not simulated.
    allow_demo : ``data.allow_demo_stimulus``: pair recordings with the demo stimulus anyway.

    Raises
    ------
    InputError : recordings without ``stimulus_dir`` and without ``allow_demo``.
    """
    if stimulus_dir is None and recorded and not allow_demo:
        raise InputError(
            None,
            "recorded sessions need the Allen stimulus frames: set data.stimulus_dir=<folder with "
            "natural_movie_one.npy or natural_scene_<i>.tiff> (or data.allow_demo_stimulus=true to pair "
            "them with the embedded demo stimulus, a stand-in whose frames are not what the mouse saw)",
        )
    return stimulus_dir


def check_stimulus_matches(stimulus: Stimulus, sessions: Sequence[Session]) -> None:
    """Refuse frames that do not fit the sessions' presentations of ``stimulus.name``.

    - **Count:** the presentations show frames 0 … n−1 (blank = −1 aside); the stimulus must
      have exactly n frames. Fewer would silently drop presentations, more would add frames
      never shown.
    - **Size:** for recorded (not simulated) sessions, non-stand-in frames must have the Allen
      template size of :data:`ALLEN_FRAME_SIZES` (the presentations were of those frames).

    Raises
    ------
    InputError : naming the session file and both counts or sizes.
    """
    for session in sessions:
        table = session.presentations.get(stimulus.name)
        if table is None or not len(table):
            continue
        shown = table["frame"].to_numpy()
        n_shown = int(shown.max()) + 1 if (shown >= 0).any() else 0
        if n_shown != stimulus.n_frames:
            raise InputError(
                session.source,
                f"the {stimulus.name} presentations show {n_shown} frames (0…{n_shown - 1}, "
                f"{len(table)} presentations), but the stimulus has {stimulus.n_frames} frames "
                f"({stimulus.description or 'loaded stimulus'}); use the template these sessions were recorded with",
            )
    recorded = [s for s in sessions if not s.is_simulated and stimulus.name in s.presentations]
    expected = ALLEN_FRAME_SIZES.get(stimulus.name)
    size = tuple(int(n) for n in stimulus.frames.shape[1:3])
    if recorded and not stimulus.is_stand_in and expected is not None and size != expected:
        raise InputError(
            recorded[0].source,
            f"the {stimulus.name} presentations of this Allen session were of {expected[0]}×{expected[1]} frames, "
            f"but the stimulus frames are {size[0]}×{size[1]} ({stimulus.description or 'loaded stimulus'})",
        )


# ---- user captions ------------------------------------------------------------------------
def read_captions_json(path: Path, n_frames: int, *, names: Sequence[str] | None = None) -> dict[int, list[str]]:
    """Read and validate a captions file: a JSON object mapping an item → list of captions.

    Items are frame (or image) indices ``0 … n_frames − 1``; with ``names`` (e.g. the file names
    of an image folder, one per index) the keys are those names. Returns index → captions.
    Raises :class:`InputError` naming ``path`` if it is missing, not JSON, or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "captions file not found")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"captions file is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InputError(path, 'captions must be a JSON object {"<frame>": ["caption", ...]}')
    position = None if names is None else {str(n): i for i, n in enumerate(names)}
    captions: dict[int, list[str]] = {}
    for key, value in raw.items():
        if position is not None:
            if key not in position:
                raise InputError(path, f"key {key!r} names none of the {len(position)} items")
            frame = position[key]
        else:
            try:
                frame = int(key)
            except ValueError:
                raise InputError(path, f"key {key!r} is not a frame index") from None
        if not 0 <= frame < n_frames:
            raise InputError(path, f"frame {frame} is out of range for a stimulus of {n_frames} frames")
        if isinstance(value, str):
            value = [value]
        if not (isinstance(value, list) and value and all(isinstance(c, str) and c.strip() for c in value)):
            raise InputError(path, f"{key}: expected a non-empty list of non-empty strings")
        captions[frame] = [c.strip() for c in value]
    if not captions:
        raise InputError(path, "captions file holds no captions")
    return captions


def _replace_captions(stimulus: Stimulus, captions: dict[int, list[str]]) -> Stimulus:
    return Stimulus(
        name=stimulus.name,
        frames=stimulus.frames,
        frame_rate=stimulus.frame_rate,
        captions=captions,
        shot_of_frame=stimulus.shot_of_frame,
        is_stand_in=stimulus.is_stand_in,
        description=stimulus.description + " Captions supplied by the user.",
    )


# ---- Allen templates ----------------------------------------------------------------------
def _as_uint8_stack(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim != 3:
        raise InputError(path, f"expected a (n_frames, height, width) grayscale array, got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() > 255:
            raise InputError(path, f"expected uint8 pixel values 0..255, got dtype {array.dtype}")
        array = array.astype(np.uint8)
    return np.ascontiguousarray(array)


def load_allen_movie(stimulus_dir: Path, name: str) -> Stimulus:
    """Read an Allen movie template (``natural_movie_one.npy`` or AllenSDK's ``natural_movie_1.npy``)."""
    if not stimulus_dir.is_dir():
        raise InputError(stimulus_dir, "stimulus folder not found")
    candidates = [stimulus_dir / f for f in _MOVIE_TEMPLATE_NAMES[name]]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise InputError(stimulus_dir, f"no movie template; expected one of {[p.name for p in candidates]}")
    try:
        frames = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(path, f"not a readable .npy array: {exc}") from None
    return Stimulus(
        name=name,
        frames=_as_uint8_stack(frames, path),
        frame_rate=30.0,
        is_stand_in=False,
        description=f"Allen Brain Observatory template {path.name}.",
    )


def load_allen_scenes(stimulus_dir: Path) -> Stimulus:
    """Read ``natural_scene_<i>.tiff`` images (indices 0..n-1, all the same size) into one stack."""
    import tifffile

    if not stimulus_dir.is_dir():
        raise InputError(stimulus_dir, "stimulus folder not found")
    files = {int(m.group(1)): p for p in stimulus_dir.iterdir() if (m := _SCENE_FILE.match(p.name))}
    if not files:
        raise InputError(stimulus_dir, "no natural_scene_<i>.tiff images found")
    missing = sorted(set(range(max(files) + 1)) - set(files))
    if missing:
        raise InputError(stimulus_dir, f"scene images are not numbered 0..{max(files)}; missing {missing[:5]}")
    images = []
    for i in range(len(files)):
        try:
            image = tifffile.imread(files[i])
        except (tifffile.TiffFileError, ValueError, OSError) as exc:
            raise InputError(files[i], f"not a readable TIFF image: {exc}") from None
        if image.ndim != 2 or (images and image.shape != images[0].shape):
            raise InputError(files[i], f"expected a grayscale image like the others, got shape {image.shape}")
        images.append(image)
    frames = _as_uint8_stack(np.stack(images), stimulus_dir)
    return Stimulus(
        name="natural_scenes",
        frames=frames,
        frame_rate=None,
        is_stand_in=False,
        description=f"Allen Brain Observatory natural scenes ({len(images)} images) from {stimulus_dir}.",
    )


# ---- embedded demo ------------------------------------------------------------------------
@dataclass(frozen=True)
class View:
    """A crop of a source photo: centre (``cy``, ``cx``) and height ``h``, as fractions of the photo."""

    cy: float
    cx: float
    h: float

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> View:
        return cls(cy=float(d["cy"]), cx=float(d["cx"]), h=float(d["h"]))


def demo_definition() -> dict[str, Any]:
    """The bundled demo definition (shots, camera paths, captions, scene bank) as a dict."""
    return json.loads(_demo_text())


@lru_cache(maxsize=1)
def _demo_text() -> str:
    return resources.files("neurrator.data").joinpath("stimulus_data", DEMO_DATA_FILE).read_text(encoding="utf-8")


def demo_version() -> str:
    """Version string of the demo definition; part of every on-disk memo key."""
    return str(demo_definition()["version"])


@cache
def _photo(source: str) -> np.ndarray:
    """A source photo as (H, W) float32 luminance in [0, 1]. ``source`` is ``"skimage:<name>"`` or ``"sklearn:<file>"``."""
    from skimage.color import rgb2gray

    package, _, item = source.partition(":")
    if package == "skimage":
        import skimage.data

        image = getattr(skimage.data, item)()
        if isinstance(image, tuple):  # stereo_motorcycle returns (left, right, disparity)
            image = image[0]
    elif package == "sklearn":
        from sklearn.datasets import load_sample_image

        image = load_sample_image(item)
    else:
        raise ValueError(f"unknown photo source {source!r}")
    image = np.asarray(image)
    if image.ndim == 3:
        image = rgb2gray(image[..., :3])
    elif image.dtype == bool:
        image = image.astype(np.float32)
    elif image.dtype == np.uint8:
        image = image / 255.0
    return np.ascontiguousarray(image, dtype=np.float32)


def _crop_boxes(views: list[View], photo_hw: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """(n, 4) crop boxes (cy, cx, height, width) in source pixels, clamped to the photo."""
    H, W = photo_hw
    aspect = out_hw[1] / out_hw[0]
    boxes = np.empty((len(views), 4))
    for i, v in enumerate(views):
        ch = v.h * H
        cw = ch * aspect
        shrink = min(1.0, W / cw, H / ch)  # crops larger than the photo shrink to fit
        ch, cw = ch * shrink, cw * shrink
        cy = np.clip(v.cy * H, ch / 2, H - ch / 2)
        cx = np.clip(v.cx * W, cw / 2, W - cw / 2)
        boxes[i] = cy, cx, ch, cw
    return boxes


def _bilinear_taps(centre: float, extent: float, n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights that sample ``n_out`` pixel centres across a crop of one axis."""
    coords = centre - extent / 2 + (np.arange(n_out) + 0.5) * (extent / n_out) - 0.5
    coords = np.clip(coords, 0, n_in - 1)
    lo = np.floor(coords).astype(np.intp)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (coords - lo).astype(np.float32)


def render_views(photo: np.ndarray, views: list[View], out_hw: tuple[int, int]) -> np.ndarray:
    """Render crops of ``photo`` (H, W) float32 at ``out_hw`` with bilinear sampling.

    Crops are axis-aligned, so bilinear sampling is separable: gather two rows, then two columns.
    The photo is first downscaled with an anti-aliasing filter so that no view samples it more
    sparsely than one source pixel per output pixel.

    Returns
    -------
    (len(views), out_h, out_w) uint8.
    """
    from skimage.transform import rescale

    boxes = _crop_boxes(views, photo.shape, out_hw)
    shrink = min(1.0, out_hw[0] / boxes[:, 2].min())
    if shrink < 1.0:
        photo = rescale(photo, shrink, anti_aliasing=True, preserve_range=True).astype(np.float32)
        boxes = boxes * shrink
    H, W = photo.shape
    out = np.empty((len(views), *out_hw), dtype=np.uint8)
    for i, (cy, cx, ch, cw) in enumerate(boxes):
        y0, y1, wy = _bilinear_taps(cy, ch, out_hw[0], H)
        x0, x1, wx = _bilinear_taps(cx, cw, out_hw[1], W)
        rows = photo[y0] * (1 - wy)[:, None] + photo[y1] * wy[:, None]
        frame = rows[:, x0] * (1 - wx) + rows[:, x1] * wx
        np.clip(np.rint(frame * 255.0), 0, 255, out=frame)
        out[i] = frame
    return out


def _shot_views(start: View, end: View, n: int) -> list[View]:
    """Camera path of one shot: ease-in/ease-out pan, geometric zoom."""
    t = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    s = 0.5 - 0.5 * np.cos(np.pi * t)
    return [
        View(
            cy=start.cy + (end.cy - start.cy) * si,
            cx=start.cx + (end.cx - start.cx) * si,
            h=math.exp(math.log(start.h) + (math.log(end.h) - math.log(start.h)) * si),
        )
        for si in s
    ]


def render_demo_movie(name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Render a demo movie from the bundled definition.

    Returns
    -------
    frames : (n_frames, 304, 608) uint8.
    shot_of_frame : (n_frames,) int64, index into ``shot_names``.
    shot_names : name of each shot, in order of appearance (a name may repeat in movie three).
    """
    definition = demo_definition()
    movie = definition["movies"][name]
    out_hw = tuple(movie["size"])
    parts, shot_of_frame, shot_names = [], [], []
    for shot_index, (shot_name, n_frames) in enumerate(movie["shots"]):
        shot = definition["shots"][shot_name]
        views = _shot_views(View.from_dict(shot["start"]), View.from_dict(shot["end"]), int(n_frames))
        parts.append(render_views(_photo(shot["source"]), views, out_hw))
        shot_of_frame.append(np.full(int(n_frames), shot_index, dtype=np.int64))
        shot_names.append(shot_name)
    return np.concatenate(parts), np.concatenate(shot_of_frame), shot_names


def render_demo_scenes() -> np.ndarray:
    """Render the demo scene bank: (n_images, 459, 587) uint8, one image per index."""
    bank = demo_definition()["scenes"]
    out_hw = tuple(bank["size"])
    return np.concatenate(
        [render_views(_photo(img["source"]), [View.from_dict(img["view"])], out_hw) for img in bank["images"]]
    )


def _memoised_frames(name: str, cache_dir: Path | None) -> np.ndarray:
    """Rendered demo frames, read from ``cache_dir`` if an intact copy of this version is there."""
    render = render_demo_scenes if name in SCENE_STIMULI else (lambda: render_demo_movie(name)[0])
    if cache_dir is None:
        return render()
    folder = Path(cache_dir) / "demo_stimuli" / demo_version()
    array_path, meta_path = folder / f"{name}.npy", folder / f"{name}.json"
    if array_path.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            frames = np.load(array_path, allow_pickle=False)
            if list(frames.shape) == meta["shape"] and Stimulus(name, frames, None).content_hash == meta["content_hash"]:
                return frames
        except (ValueError, OSError, KeyError, json.JSONDecodeError):
            pass  # a damaged memo is simply re-rendered
    frames = render()
    with atomic_path(array_path) as tmp:
        np.save(tmp, frames, allow_pickle=False)
    atomic_write_json(meta_path, {"shape": list(frames.shape), "content_hash": Stimulus(name, frames, None).content_hash})
    return frames


def load_demo_stimulus(name: str, *, cache_dir: Path | None = None) -> Stimulus:
    """The embedded offline demo stimulus (``is_stand_in=True``); see the module docstring."""
    frames = _demo_frames(name, None if cache_dir is None else str(cache_dir))
    definition = demo_definition()
    if name in SCENE_STIMULI:
        images = definition["scenes"]["images"]
        return Stimulus(
            name=name,
            frames=frames,
            frame_rate=None,
            captions={i: list(img["captions"]) for i, img in enumerate(images)},
            is_stand_in=True,
            description=(
                f"Embedded demo scene bank ({len(images)} photographs from scikit-image/scikit-learn, "
                f"{definition['version']}); a stand-in for the Allen natural scenes."
            ),
        )
    movie = definition["movies"][name]
    lengths = [int(n) for _, n in movie["shots"]]
    shot_of_frame = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    shot_captions = [definition["shots"][shot_name]["captions"] for shot_name, _ in movie["shots"]]
    return Stimulus(
        name=name,
        frames=frames,
        frame_rate=float(movie["frame_rate"]),
        captions={f: list(shot_captions[s]) for f, s in enumerate(shot_of_frame.tolist())},
        shot_of_frame=shot_of_frame,
        is_stand_in=True,
        description=(
            f"Embedded demo movie ({len(lengths)} shots with pans, zooms and cuts over photographs from "
            f"scikit-image/scikit-learn, {definition['version']}); a stand-in for the Allen {name}."
        ),
    )


@lru_cache(maxsize=3)
def _demo_frames(name: str, cache_dir: str | None) -> np.ndarray:
    # One render per process: the simulator, ingest and embed all ask for the same frames.
    frames = _memoised_frames(name, None if cache_dir is None else Path(cache_dir))
    frames.flags.writeable = False
    return frames
