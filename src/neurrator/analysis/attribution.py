"""DINA-style attribution (Wang et al. 2026, "Dual-Tower Image-Neural Alignment").

- **Neuron importance**: gradient × input of a scalar target with respect to the spike window,
  summed over time bins and averaged over test windows, per unit. Targets are SAE features
  (patch-mean ReLU pre-activation) or vision-space dimensions (patch-mean value). DINA's
  finding to check: a handful of units carry most of each target.
- **Spatial saliency**: per-patch prediction accuracy over the image grid, as the cosine between
  predicted and true patch and as the fraction of across-window variance explained per patch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from neurrator.analysis.common import figure_png
from neurrator.analysis.result import AnalysisResult
from neurrator.analysis.sae import mean_codes
from neurrator.core.sampling import evenly_spaced

if TYPE_CHECKING:
    from neurrator.analysis.config import AnalysisConfig
    from neurrator.analysis.inputs import AnalysisInputs

#: windows (n, T, n_units) → predicted patches (n, n_patches, dim); differentiable.
ForwardFn = Callable[[torch.Tensor], torch.Tensor]
#: patches (n, n_patches, dim) → target values (n, n_targets); differentiable.
TargetFn = Callable[[torch.Tensor], torch.Tensor]


def gradient_x_input(
    forward: ForwardFn, windows: torch.Tensor, targets: TargetFn, *, batch_size: int = 32
) -> np.ndarray:
    """Signed gradient × input importance of every unit for every target.

    Parameters
    ----------
    forward : the encoder, windows → patches.
    windows : (n, T, n_units) spike windows (z-scored; absent units already zero).
    targets : patches → (n, n_targets).

    Returns
    -------
    (n_targets, n_units) float32: mean over windows of Σ_t x[t, u] · ∂target/∂x[t, u].
    """
    total = None
    for start in range(0, len(windows), batch_size):
        x = windows[start : start + batch_size].detach().clone().float().requires_grad_(True)
        values = targets(forward(x))  # (b, n_targets)
        rows = []
        for k in range(values.shape[1]):
            (grad,) = torch.autograd.grad(
                values[:, k].sum(), x, retain_graph=k < values.shape[1] - 1
            )
            rows.append((grad * x).sum(dim=1).sum(dim=0))  # (n_units,)
        batch = torch.stack(rows).detach()
        total = batch if total is None else total + batch
    return (total / len(windows)).numpy().astype(np.float32)


def patch_accuracy(predicted: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-patch accuracy of predictions.

    Parameters
    ----------
    predicted, true : (n_windows, n_patches, dim).

    Returns
    -------
    cosine : (n_patches,) mean over windows of cos(predicted, true) per patch.
    r2 : (n_patches,) 1 − Σ‖pred − true‖² / Σ‖true − mean_true‖² per patch, across windows.
    """
    predicted = np.asarray(predicted, dtype=np.float32)
    true = np.asarray(true, dtype=np.float32)
    num = np.einsum("npd,npd->np", predicted, true)
    den = np.linalg.norm(predicted, axis=-1) * np.linalg.norm(true, axis=-1)
    cosine = (num / np.maximum(den, 1e-12)).mean(0)
    err = ((predicted - true) ** 2).sum(axis=(0, 2))
    tot = ((true - true.mean(0, keepdims=True)) ** 2).sum(axis=(0, 2))
    return cosine, 1.0 - err / np.maximum(tot, 1e-12)


@dataclass
class TargetAttribution:
    target: str
    top_units: list[dict]
    top10_share: float
    area_share: dict[str, float]


@dataclass
class AttributionResult:
    grid: list[int]
    patch_cosine: list[list[float]]
    patch_r2: list[list[float]]
    targets: list[TargetAttribution]
    n_windows: int
    target_kind: str
    units_for_50pct: list[int]

    def to_dict(self) -> dict:
        return asdict(self)


def summarise_importance(
    importance: np.ndarray,
    target_names: Sequence[str],
    unit_ids: np.ndarray,
    areas: Sequence[str | None],
    *,
    top_units: int = 10,
) -> tuple[list[TargetAttribution], list[int]]:
    """Top units, the share of |importance| held by the top 10, by area, per target; and the
    number of units needed for half the |importance| of each target."""
    out, half = [], []
    areas = np.asarray([a if a is not None else "?" for a in areas])
    for k, name in enumerate(target_names):
        mag = np.abs(importance[k])
        total = max(float(mag.sum()), 1e-12)
        order = np.argsort(-mag, kind="stable")
        cum = np.cumsum(mag[order]) / total
        half.append(int(np.searchsorted(cum, 0.5) + 1))
        out.append(
            TargetAttribution(
                target=name,
                top_units=[
                    {
                        "unit_id": int(unit_ids[u]),
                        "area": str(areas[u]),
                        "importance": float(importance[k, u]),
                    }
                    for u in order[:top_units]
                ],
                top10_share=float(mag[order[:10]].sum() / total),
                area_share={str(a): float(mag[areas == a].sum() / total) for a in np.unique(areas)},
            )
        )
    return out, half


def plot_attribution(result: AttributionResult) -> bytes:
    """Per-patch accuracy maps and each target's importance share by area."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, values, title in (
        (axes[0], result.patch_cosine, "per-patch cosine (pred vs true)"),
        (axes[1], result.patch_r2, "per-patch variance explained"),
    ):
        image = ax.imshow(np.asarray(values), cmap="magma")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, shrink=0.8)
    areas = sorted({a for t in result.targets for a in t.area_share})
    bottom = np.zeros(len(result.targets))
    colours = plt.get_cmap("tab20")
    for i, area in enumerate(areas):
        share = np.array([t.area_share.get(area, 0.0) for t in result.targets])
        axes[2].bar(
            range(len(result.targets)), share, bottom=bottom, color=colours(i % 20), label=area
        )
        bottom += share
    axes[2].set_xticks(
        range(len(result.targets)),
        [t.target[:32] for t in result.targets],
        rotation=45,
        ha="right",
        fontsize=7,
    )
    axes[2].set_ylabel("share of |gradient × input|")
    axes[2].set_title(f"neuron importance by area ({result.target_kind} targets)", fontsize=9)
    axes[2].legend(fontsize=6, ncol=2)
    fig.suptitle(f"DINA-style attribution over {result.n_windows} test windows", fontsize=9)
    fig.tight_layout()
    return figure_png(fig)


# ---- the attribution analysis -------------------------------------------------------------------
def run(inputs: AnalysisInputs, config: AnalysisConfig) -> AnalysisResult:
    """Gradient × input neuron importance per target, and per-patch accuracy maps.

    Targets are the SAE features most active on the test windows when ``attribution.targets``
    is ``"sae"`` and the inputs hold a concept dictionary, else the highest-variance dimensions.
    """
    cfg = config.attribution
    sub = inputs.subset(evenly_spaced(len(inputs.frames), cfg.max_windows))
    everyone = torch.ones(sub.n_units, dtype=torch.bool)
    predicted = sub.predict(everyone.numpy())
    true = np.asarray(inputs.frame_targets[np.sort(np.unique(sub.frames))], dtype=np.float32)
    true = true[np.searchsorted(np.unique(sub.frames), sub.frames)]
    cosine, r2 = patch_accuracy(predicted.numpy(), true)
    concepts = inputs.concepts
    if cfg.targets == "sae" and concepts is not None:
        sae = concepts.sae
        chosen = np.argsort(-mean_codes(sae, predicted).mean(0), kind="stable")[: cfg.n_targets]
        names = [f"SAE #{f}: {concepts.label(f)}" for f in chosen]
        w_enc, b_enc = sae.W_enc.detach()[:, chosen], sae.b_enc.detach()[chosen]
        scale, b_dec = sae.input_scale, sae.b_dec.detach()

        def targets(patches: torch.Tensor) -> torch.Tensor:
            return torch.relu((patches * scale - b_dec) @ w_enc + b_enc).mean(1)

        kind = "sae"
    else:
        chosen = torch.argsort(-predicted.mean(1).var(0))[: cfg.n_targets].numpy()
        names = [f"dim {int(d)}" for d in chosen]
        idx = torch.as_tensor(chosen)

        def targets(patches: torch.Tensor) -> torch.Tensor:
            return patches.mean(1)[:, idx]

        kind = "dims"

    def forward(x: torch.Tensor) -> torch.Tensor:
        return inputs.encoder(x, everyone)

    importance = gradient_x_input(forward, sub.windows, targets, batch_size=min(32, inputs.batch_size))
    areas = inputs.units["area"].tolist() if "area" in inputs.units else [None] * sub.n_units
    per_target, half = summarise_importance(importance, names, inputs.units.index.to_numpy(), areas,
                                            top_units=cfg.top_units)
    result = AttributionResult(list(inputs.grid), cosine.reshape(inputs.grid).round(5).tolist(),
                               r2.reshape(inputs.grid).round(5).tolist(), per_target, len(sub.frames), kind, half)
    summary = {
        "target_kind": kind,
        "n_windows": len(sub.frames),
        "mean_patch_cosine": float(cosine.mean()),
        "best_patch_cosine": float(cosine.max()),
        "worst_patch_cosine": float(cosine.min()),
        "mean_patch_r2": float(r2.mean()),
        "targets": [
            {"target": t.target, "units_for_half_importance": h, "top10_share": round(t.top10_share, 4),
             "top_unit": t.top_units[0]["unit_id"], "top_unit_area": t.top_units[0]["area"],
             "largest_area_share": max(t.area_share.items(), key=lambda kv: kv[1])[0]}
            for t, h in zip(per_target, half, strict=True)
        ],
    }
    return AnalysisResult(
        "attribution", summary, result.to_dict(), inputs.used(cfg, n_windows=len(sub.frames), target_kind=kind),
        figures={"attribution.png": plot_attribution(result)},
        line=f"mean per-patch cosine {summary['mean_patch_cosine']:.3f} ({kind} targets)",
    )
