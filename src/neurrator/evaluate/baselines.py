"""Baselines that map spike windows to the same patch targets as Neurrator (paper A.6).

Every baseline sees the same spike features, the same split and the same targets:

- spike features (:func:`window_features`): each window's mean z-score in ``n_chunks``
  equal chunks of its bins, per unit, so (n, n_chunks × n_units);
- targets in a compact form (:class:`TargetBasis`): the principal components of the
  *training* frames' flattened patch tensors. Ridge and the MLP regress onto these
  coefficients and the basis maps them back to full (n_patches, dim) tensors, which is the
  usual way to regress 590k outputs; kNN methods average their neighbours' coefficients.

Baselines (scikit-learn style, ``fit(X, y)`` then ``predict(X)``):

- :class:`RidgePatches`: standardised features → ridge → target coefficients.
- :class:`MLPPatches`: a one-hidden-layer torch MLP → target coefficients.
- :class:`PCAKNN`: PCA of the features, cosine kNN over training windows.
- :class:`CEBRAKNN`: the real ``cebra`` package (sklearn API, ``offset1-model``) on the
  top principal components of the features, then cosine kNN in the CEBRA embedding, as in
  CEBRA's Allen frame-identification protocol.

kNN baselines answer two ways: a frame by majority vote (CEBRA's readout, Table A3) and a
patch tensor, the mean of the neighbours' targets (what a narrator can read, Table A1).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from neurrator.preprocess.types import NeuralDataset

# ---- features and targets ----------------------------------------------------------------


def window_features(dataset: NeuralDataset, pairs: np.ndarray, *, n_chunks: int = 2, batch_size: int = 512) -> np.ndarray:
    """Spike features of ``(repeat, frame)`` pairs (n, 2) → (n, n_chunks × n_units) float32.

    Each window (``dataset.window`` bins) is cut into ``n_chunks`` near-equal runs of bins and
    averaged within each, so early and late responses stay apart.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    edges = np.linspace(0, dataset.window, n_chunks + 1).round().astype(int)
    out = np.empty((len(pairs), n_chunks * dataset.n_units), dtype=np.float32)
    for start in range(0, len(pairs), batch_size):
        w = dataset.windows(pairs[start : start + batch_size])  # (b, window, n_units)
        chunks = [w[:, a:b].mean(axis=1) for a, b in itertools.pairwise(edges)]
        out[start : start + len(w)] = np.concatenate(chunks, axis=1)
    return out


class TargetBasis:
    """Principal components of flattened patch tensors of training frames, fitted via the Gram matrix.

    The Gram route needs only (n_frames × n_frames) memory plus one chunk of patches at a time,
    so a 900 × 576 × 1024 memory-mapped target cache is never loaded whole.

    Parameters
    ----------
    n_components : number of components kept (capped at n_training_frames − 1).
    patch_chunk : patches read per pass over the cache.

    Attributes
    ----------
    mean_ : (n_patches, dim) float32 mean training target.
    components_ : (n_components, n_patches × dim) float32 orthonormal rows.
    pooled_components_ : (n_components, dim) each component's mean over patches.
    explained_variance_ratio_ : (n_components,).
    """

    def __init__(self, n_components: int = 128, *, patch_chunk: int = 32):
        self.n_components = n_components
        self.patch_chunk = patch_chunk

    def fit(self, patches: np.ndarray, frames: np.ndarray) -> TargetBasis:
        """``patches``: (n_frames, n_patches, dim) cache; ``frames``: training frame indices."""
        frames = np.unique(np.asarray(frames, dtype=np.int64))
        n, n_patches, dim = len(frames), patches.shape[1], patches.shape[2]
        k = min(self.n_components, n - 1)
        self.mean_ = np.zeros((n_patches, dim), dtype=np.float32)
        gram = np.zeros((n, n), dtype=np.float64)
        for p in range(0, n_patches, self.patch_chunk):
            block = np.asarray(patches[frames, p : p + self.patch_chunk], dtype=np.float32)
            mu = block.mean(axis=0)
            self.mean_[p : p + self.patch_chunk] = mu
            flat = (block - mu).reshape(n, -1)
            gram += flat @ flat.T
        eigval, eigvec = np.linalg.eigh(gram)
        order = np.argsort(eigval)[::-1][:k]
        # Directions with (numerically) no variance would be amplified noise: drop them.
        order = order[eigval[order] > 1e-8 * max(eigval.max(), 1e-30)]
        k = len(order)
        eigval, eigvec = eigval[order], eigvec[:, order]
        self.explained_variance_ratio_ = (eigval / np.clip(np.trace(gram), 1e-12, None)).astype(np.float32)
        # components = U^T Xc / sqrt(λ): built chunk by chunk, rows orthonormal.
        components = np.empty((k, n_patches, dim), dtype=np.float32)
        projector = (eigvec / np.sqrt(eigval)).astype(np.float32)  # (n, k)
        for p in range(0, n_patches, self.patch_chunk):
            block = np.asarray(patches[frames, p : p + self.patch_chunk], dtype=np.float32) - self.mean_[p : p + self.patch_chunk]
            components[:, p : p + self.patch_chunk] = (projector.T @ block.reshape(n, -1)).reshape(k, -1, dim)
        self.components_ = components.reshape(k, -1)
        self.pooled_components_ = components.mean(axis=1)
        self.pooled_mean_ = self.mean_.mean(axis=0)
        self.frames_ = frames
        self.shape_ = (n_patches, dim)
        return self

    def transform(self, patches: np.ndarray, frames: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """Coefficients of the targets of ``frames`` (n,) → (n, n_components) float32."""
        frames = np.asarray(frames, dtype=np.int64)
        out = np.empty((len(frames), len(self.components_)), dtype=np.float32)
        for start in range(0, len(frames), batch_size):
            block = np.asarray(patches[frames[start : start + batch_size]], dtype=np.float32) - self.mean_
            out[start : start + len(block)] = block.reshape(len(block), -1) @ self.components_.T
        return out

    def inverse_transform(self, coefs: np.ndarray) -> np.ndarray:
        """(n, n_components) → (n, n_patches, dim) float32 patch tensors."""
        flat = np.asarray(coefs, dtype=np.float32) @ self.components_
        return flat.reshape(len(coefs), *self.shape_) + self.mean_

    def pooled(self, coefs: np.ndarray) -> np.ndarray:
        """(n, n_components) → (n, dim) mean over patches of the reconstruction, without building it."""
        return np.asarray(coefs, dtype=np.float32) @ self.pooled_components_ + self.pooled_mean_


# ---- baselines ----------------------------------------------------------------------------


class RidgePatches:
    """Ridge regression from spike features to target coefficients (with feature standardisation)."""

    def __init__(self, alpha: float = 100.0):
        self.alpha = alpha

    def fit(self, features: np.ndarray, coefs: np.ndarray) -> RidgePatches:
        self.model_ = make_pipeline(StandardScaler(), Ridge(alpha=self.alpha))
        self.model_.fit(features, coefs)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.model_.predict(features).astype(np.float32)

    @property
    def n_parameters(self) -> int:
        ridge = self.model_[-1]
        return int(ridge.coef_.size + np.size(ridge.intercept_))


class MLPPatches:
    """A one-hidden-layer MLP (GELU, dropout) from spike features to target coefficients.

    Trained with AdamW on mean-squared error of standardised coefficients; seeded.
    """

    def __init__(self, hidden: int = 512, *, epochs: int = 30, lr: float = 1e-3, weight_decay: float = 1e-3,
                 dropout: float = 0.2, batch_size: int = 128, seed: int = 0):
        self.hidden, self.epochs, self.lr, self.weight_decay = hidden, epochs, lr, weight_decay
        self.dropout, self.batch_size, self.seed = dropout, batch_size, seed

    def fit(self, features: np.ndarray, coefs: np.ndarray) -> MLPPatches:
        generator = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        self.x_mean_, self.x_std_ = features.mean(0), features.std(0) + 1e-6
        self.y_mean_, self.y_std_ = coefs.mean(0), coefs.std(0) + 1e-6
        x = torch.from_numpy(((features - self.x_mean_) / self.x_std_).astype(np.float32))
        y = torch.from_numpy(((coefs - self.y_mean_) / self.y_std_).astype(np.float32))
        self.model_ = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], self.hidden), torch.nn.GELU(), torch.nn.Dropout(self.dropout),
            torch.nn.Linear(self.hidden, y.shape[1]),
        )
        opt = torch.optim.AdamW(self.model_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        self.model_.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), self.batch_size):
                idx = order[start : start + self.batch_size]
                loss = torch.nn.functional.mse_loss(self.model_(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        self.model_.eval()
        return self

    @torch.no_grad()
    def predict(self, features: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(((features - self.x_mean_) / self.x_std_).astype(np.float32))
        return (self.model_(x).numpy() * self.y_std_ + self.y_mean_).astype(np.float32)

    @property
    def n_parameters(self) -> int:
        return int(sum(p.numel() for p in self.model_.parameters()))


class _KNNReadout:
    """Cosine kNN over training embeddings: a frame by vote, and the neighbours' mean coefficients."""

    def _fit_knn(self, embedding: np.ndarray, frames: np.ndarray, coefs: np.ndarray) -> None:
        self.knn_ = KNeighborsClassifier(n_neighbors=min(self.k, len(frames)), metric="cosine")
        self.knn_.fit(embedding, frames)
        self.train_coefs_ = coefs

    def _readout(self, embedding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        neighbours = self.knn_.kneighbors(embedding, return_distance=False)
        return self.knn_.predict(embedding).astype(np.int64), self.train_coefs_[neighbours].mean(axis=1)


class PCAKNN(_KNNReadout):
    """PCA of standardised spike features, then cosine kNN over training windows."""

    def __init__(self, n_components: int = 64, k: int = 10, seed: int = 0):
        self.n_components, self.k, self.seed = n_components, k, seed

    def fit(self, features: np.ndarray, frames: np.ndarray, coefs: np.ndarray) -> PCAKNN:
        n_comp = min(self.n_components, *features.shape)
        self.pca_ = make_pipeline(StandardScaler(), PCA(n_components=n_comp, random_state=self.seed))
        self._fit_knn(self.pca_.fit_transform(features), frames, coefs)
        return self

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """→ ``(frames (n,), coefs (n, n_components))``."""
        return self._readout(self.pca_.transform(features))

    @property
    def n_parameters(self) -> int:
        pca = self.pca_[-1]
        return int(pca.components_.size + pca.mean_.size)


class CEBRAKNN(_KNNReadout):
    """CEBRA (``cebra.CEBRA``, sklearn API) on PCA-reduced spike features, then cosine kNN.

    Parameters
    ----------
    output_dimension : CEBRA embedding size (paper A3: 128, 256, 512).
    mode : ``"targets"`` (continuous labels: leading target coefficients, CEBRA-Behavior),
        ``"frame_labels"`` (discrete frame ids) or ``"time"`` (time-contrastive, no labels).
    max_iterations, batch_size, hidden : CEBRA training budget and width.
    input_components : PCA components the spike features are reduced to first; CEBRA's
        ``offset1-model`` is an MLP whose cost grows with the input width.
    label_dims : target coefficients used as continuous labels in ``"targets"`` mode.
    """

    def __init__(self, output_dimension: int = 512, *, mode: str = "targets", max_iterations: int = 2000,
                 batch_size: int = 512, hidden: int = 256, input_components: int = 256, label_dims: int = 16,
                 k: int = 10, seed: int = 0):
        self.output_dimension, self.mode, self.max_iterations = output_dimension, mode, max_iterations
        self.batch_size, self.hidden, self.input_components = batch_size, hidden, input_components
        self.label_dims, self.k, self.seed = label_dims, k, seed

    def fit(self, features: np.ndarray, frames: np.ndarray, coefs: np.ndarray) -> CEBRAKNN:
        from cebra import CEBRA

        n_comp = min(self.input_components, *features.shape)
        self.pca_ = make_pipeline(StandardScaler(), PCA(n_components=n_comp, random_state=self.seed))
        x = self.pca_.fit_transform(features).astype(np.float32)
        torch.manual_seed(self.seed)
        self.cebra_ = CEBRA(
            model_architecture="offset1-model", device="cpu", batch_size=min(self.batch_size, len(x)),
            max_iterations=self.max_iterations, output_dimension=self.output_dimension,
            num_hidden_units=self.hidden, conditional="time" if self.mode == "time" else None,
            time_offsets=1, learning_rate=3e-4, verbose=False,
        )
        if self.mode == "targets":
            labels = coefs[:, : self.label_dims]
            self.cebra_.fit(x, ((labels - labels.mean(0)) / (labels.std(0) + 1e-6)).astype(np.float32))
        elif self.mode == "frame_labels":
            self.cebra_.fit(x, np.asarray(frames, dtype=np.int64))
        else:
            self.cebra_.fit(x)
        self._fit_knn(self.cebra_.transform(x), frames, coefs)
        return self

    def transform(self, features: np.ndarray) -> np.ndarray:
        """(n, n_features) → (n, output_dimension) CEBRA embedding."""
        return self.cebra_.transform(self.pca_.transform(features).astype(np.float32))

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """→ ``(frames (n,), coefs (n, n_components))``."""
        return self._readout(self.transform(features))

    @property
    def n_parameters(self) -> int:
        return int(sum(p.numel() for p in self.cebra_.model_.parameters()) + self.pca_[-1].components_.size)


# ---- one call for all feature baselines -------------------------------------------------


@dataclass
class BaselinePrediction:
    """One baseline's answer on the test windows.

    Attributes
    ----------
    name : table label, e.g. ``"Ridge"``, ``"CEBRA-512 + kNN"``.
    coefs : (n_test, n_components) target coefficients; patches = ``basis.inverse_transform``.
    pooled : (n_test, dim) mean over patches of the predicted tensors.
    voted_frames : (n_test,) frame by kNN vote, or ``None`` for regression baselines.
    n_parameters : trainable (or stored) parameters.
    fit_seconds : wall time of fit + predict.
    notes : how it was configured (iterations, input width, ...).
    """

    name: str
    coefs: np.ndarray | None
    pooled: np.ndarray
    voted_frames: np.ndarray | None
    n_parameters: int
    fit_seconds: float
    notes: dict = field(default_factory=dict)


def run_feature_baselines(
    names: list[str],
    train_features: np.ndarray,
    train_frames: np.ndarray,
    test_features: np.ndarray,
    basis: TargetBasis,
    train_coefs: np.ndarray,
    *,
    ridge_alpha: float = 100.0,
    pca_components: int = 64,
    knn_k: int = 10,
    mlp_hidden: int = 512,
    mlp_epochs: int = 30,
    cebra_dims: tuple[int, ...] = (512,),
    cebra_mode: str = "targets",
    cebra_iterations: int = 2000,
    cebra_batch_size: int = 512,
    cebra_hidden: int = 256,
    cebra_input_components: int = 256,
    seed: int = 0,
) -> list[BaselinePrediction]:
    """Fit and apply the requested feature baselines (``ridge``, ``mlp``, ``pca_knn``, ``cebra``).

    Parameters
    ----------
    train_features, test_features : (n, n_features) from :func:`window_features`.
    train_frames : (n_train,) frame of each training window.
    basis : :class:`TargetBasis` fitted on the training frames.
    train_coefs : (n_train, n_components) target coefficients of each training window's frame.
    """
    out: list[BaselinePrediction] = []
    for name in names:
        t0 = time.perf_counter()
        if name == "ridge":
            model = RidgePatches(ridge_alpha).fit(train_features, train_coefs)
            coefs = model.predict(test_features)
            out.append(BaselinePrediction("Ridge", coefs, basis.pooled(coefs), None, model.n_parameters,
                                          time.perf_counter() - t0, {"alpha": ridge_alpha}))
        elif name == "mlp":
            model = MLPPatches(mlp_hidden, epochs=mlp_epochs, seed=seed).fit(train_features, train_coefs)
            coefs = model.predict(test_features)
            out.append(BaselinePrediction("MLP-Patches", coefs, basis.pooled(coefs), None, model.n_parameters,
                                          time.perf_counter() - t0, {"hidden": mlp_hidden, "epochs": mlp_epochs}))
        elif name == "pca_knn":
            model = PCAKNN(pca_components, knn_k, seed).fit(train_features, train_frames, train_coefs)
            voted, coefs = model.predict(test_features)
            out.append(BaselinePrediction("PCA + kNN", coefs, basis.pooled(coefs), voted, model.n_parameters,
                                          time.perf_counter() - t0, {"components": pca_components, "k": knn_k}))
        elif name == "cebra":
            for dim in cebra_dims:
                t0 = time.perf_counter()
                model = CEBRAKNN(dim, mode=cebra_mode, max_iterations=cebra_iterations, batch_size=cebra_batch_size,
                                 hidden=cebra_hidden, input_components=cebra_input_components, k=knn_k,
                                 seed=seed).fit(train_features, train_frames, train_coefs)
                voted, coefs = model.predict(test_features)
                notes = {"mode": cebra_mode, "iterations": cebra_iterations, "batch_size": cebra_batch_size,
                         "hidden": cebra_hidden, "input_components": model.pca_[-1].n_components_, "k": knn_k}
                out.append(BaselinePrediction(f"CEBRA-{dim} + kNN", coefs, basis.pooled(coefs), voted,
                                              model.n_parameters, time.perf_counter() - t0, notes))
        else:
            raise ValueError(f"unknown feature baseline {name!r}")
    return out
