"""CIFAR pickles, MNIST IDX files and image folders, written here in their real on-disk formats."""

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from layerscope.datasets import load_dataset, read_cifar_batch, read_idx
from layerscope.datasets.folder import read_image
from layerscope.errors import DatasetFormatError, DatasetNotFoundError


def _raw(dataset):
    return torch.stack([dataset[i][0] for i in range(len(dataset))]), dataset.targets


# ------------------------------------------------------------------------------------ CIFAR
def _cifar_batch(rng, n, label_keys):
    batch = {b"batch_label": b"testing", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
    for key, classes in label_keys.items():
        batch[key] = rng.integers(0, classes, n).tolist()
    return batch


def _dump(path, obj):
    path.write_bytes(pickle.dumps(obj, protocol=2))


@pytest.fixture
def cifar10_root(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = _cifar_batch(rng, 3, {b"labels": 10})
        _dump(folder / name, batches[name])
    names = [n.encode() for n in "a b c d e f g h i j".split()]
    _dump(folder / "batches.meta", {b"label_names": names, b"num_cases_per_batch": 3})
    return tmp_path, batches


def test_cifar10_reads_the_pickle_folder(cifar10_root):
    root, batches = cifar10_root
    splits = load_dataset("cifar10", root=root, augment=False, normalize=False)
    train_x, train_y = _raw(splits.train)
    assert len(splits.train) == 15 and len(splits.test) == 3
    expected = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    # The row is the red, green and blue 32x32 planes, row-major.
    np.testing.assert_allclose(train_x.numpy(), expected.reshape(15, 3, 32, 32) / 255.0, atol=1e-7)
    assert train_y.tolist() == [
        label for i in range(1, 6) for label in batches[f"data_batch_{i}"][b"labels"]
    ]
    assert splits.class_names == tuple("abcdefghij")
    assert (splits.num_classes, splits.in_channels) == (10, 3)
    pixel = batches["test_batch"][b"data"][1]
    assert splits.test[1][0][2, 0, 5].item() == pytest.approx(pixel[2 * 1024 + 5] / 255.0)


def test_cifar10_accepts_root_pointing_at_the_folder_and_env(cifar10_root, monkeypatch):
    root, _ = cifar10_root
    assert len(load_dataset("cifar10", root=root / "cifar-10-batches-py").test) == 3
    monkeypatch.setenv("LAYERSCOPE_DATA", str(root))
    assert len(load_dataset("cifar10", resolution=16).train) == 15


def test_cifar100_fine_and_coarse_labels(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    keys = {b"fine_labels": 100, b"coarse_labels": 20}
    train, test = _cifar_batch(rng, 4, keys), _cifar_batch(rng, 2, keys)
    _dump(folder / "train", train)
    _dump(folder / "test", test)
    meta = {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}  # fmt: skip
    _dump(folder / "meta", meta)
    fine = load_dataset("cifar100", root=tmp_path, resolution=8)
    coarse = load_dataset("cifar100", root=tmp_path, labels="coarse")
    assert fine.train.targets.tolist() == train[b"fine_labels"] and fine.num_classes == 100
    assert coarse.test.targets.tolist() == test[b"coarse_labels"] and coarse.num_classes == 20
    assert coarse.class_names[3] == "c3" and fine.class_names[99] == "f99"
    with pytest.raises(ValueError, match="'fine' or 'coarse'"):
        load_dataset("cifar100", root=tmp_path, labels="medium")


def test_missing_cifar_folder_says_which_files_go_where(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("cifar10", root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    for name in ["data_batch_1", "data_batch_5", "test_batch"]:
        assert name in message
    with pytest.raises(FileNotFoundError, match=r"cifar-100-python/: train, test"):
        load_dataset("cifar100", root=tmp_path)


def test_python2_numpy_module_names_load(tmp_path):
    # The official files were written by Python 2 with numpy 1 ("numpy.core.multiarray").
    data = {b"data": np.arange(3072, dtype=np.uint8)[None], b"labels": [4]}
    raw = pickle.dumps(data, protocol=2).replace(
        b"numpy._core.multiarray", b"numpy.core.multiarray"
    )
    (tmp_path / "b").write_bytes(raw)
    images, labels = read_cifar_batch(tmp_path / "b")
    assert images.shape == (1, 3, 32, 32) and labels.tolist() == [4]


def test_pickles_with_code_or_wrong_content_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (tmp_path / "evil").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DatasetFormatError, match="refusing to load"):
        read_cifar_batch(tmp_path / "evil")
    _dump(tmp_path / "shape", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    with pytest.raises(DatasetFormatError, match=r"\(N, 3072\)"):
        read_cifar_batch(tmp_path / "shape")
    _dump(tmp_path / "nolabels", {b"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(DatasetFormatError, match="no key 'labels'"):
        read_cifar_batch(tmp_path / "nolabels")
    (tmp_path / "junk").write_bytes(b"not a pickle at all")
    with pytest.raises(DatasetFormatError, match="not a readable CIFAR pickle"):
        read_cifar_batch(tmp_path / "junk")


# ------------------------------------------------------------------------------------ IDX
def _idx(array: np.ndarray, code: int) -> bytes:
    """An IDX file by the spec: 0, 0, type code, ndim, big-endian uint32 dims, big-endian data."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write_mnist(folder, rng, gz, n_train=5, n_test=3):
    folder.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, array in arrays.items():
        raw = _idx(array, 0x08)
        if name.startswith("train-images"):
            assert raw[:4] == b"\x00\x00\x08\x03"  # the magic number 2051
        if name.startswith("train-labels"):
            assert raw[:4] == b"\x00\x00\x08\x01"  # 2049
        path = folder / (name + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(raw) if gz else raw)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_idx_files(tmp_path, gz):
    arrays = _write_mnist(tmp_path / "mnist", np.random.default_rng(2), gz)
    splits = load_dataset("mnist", root=tmp_path, resolution=28, augment=False, normalize=False)
    train_x, train_y = _raw(splits.train)
    np.testing.assert_allclose(
        train_x[:, 0].numpy(), arrays["train-images-idx3-ubyte"] / 255.0, atol=1e-7
    )
    assert train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert _raw(splits.test)[1].tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert (splits.in_channels, splits.num_classes, splits.input_size) == (1, 10, 28)


def test_fashion_mnist_in_torchvision_layout(tmp_path):
    _write_mnist(tmp_path / "FashionMNIST" / "raw", np.random.default_rng(3), gz=True)
    splits = load_dataset("fashion_mnist", root=tmp_path)
    assert splits.class_names[9] == "Ankle boot" and splits.input_size == 32


def test_missing_mnist_names_the_four_files(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "mnist") in message
    for name in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"]:  # fmt: skip
        assert name in message


@pytest.mark.parametrize(
    ("dtype", "code"),
    [(np.uint8, 0x08), (np.int8, 0x09), (np.int16, 0x0B), (np.int32, 0x0C), (np.float32, 0x0D),
     (np.float64, 0x0E)],
)  # fmt: skip
def test_read_idx_every_type_big_endian(tmp_path, dtype, code):
    array = (
        np.arange(24).reshape(2, 3, 4) * (-1 if np.issubdtype(dtype, np.signedinteger) else 1)
    ).astype(dtype)
    (tmp_path / "a").write_bytes(_idx(array, code))
    out = read_idx(tmp_path / "a")
    np.testing.assert_array_equal(out, array)
    assert out.dtype.isnative


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path):
    good = _idx(np.zeros((2, 2), np.uint8), 0x08)
    (tmp_path / "magic").write_bytes(b"\x01" + good[1:])
    with pytest.raises(DatasetFormatError, match="not an IDX file"):
        read_idx(tmp_path / "magic")
    (tmp_path / "type").write_bytes(good[:2] + b"\x07" + good[3:])
    with pytest.raises(DatasetFormatError, match="type code"):
        read_idx(tmp_path / "type")
    (tmp_path / "short").write_bytes(good[:-1])
    with pytest.raises(DatasetFormatError, match="need 4 bytes of data, the file has 3"):
        read_idx(tmp_path / "short")
    (tmp_path / "gz").write_bytes(gzip.compress(good)[:-6])
    with pytest.raises(DatasetFormatError, match="damaged gzip"):
        read_idx(tmp_path / "gz")


# ------------------------------------------------------------------------------------ folders
def _write_png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder_with_train_and_test(tmp_path):
    pytest.importorskip("PIL")
    rng = np.random.default_rng(4)
    pixels = {}
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("dog", "cat"):
            for i in range(n):
                array = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
                pixels[(split, cls, i)] = array
                _write_png(tmp_path / split / cls / f"{i}.png", array)
    splits = load_dataset("folder", root=tmp_path, resolution=6, augment=False, normalize=False)
    assert splits.class_names == ("cat", "dog") and splits.num_classes == 2
    assert splits.train.targets.tolist() == [0, 0, 0, 1, 1, 1]
    x, y = splits.test[3]  # dog/1.png, lossless PNG
    assert y == 1
    np.testing.assert_allclose(
        x.permute(1, 2, 0).numpy(), pixels[("test", "dog", 1)] / 255.0, atol=1e-6
    )
    grey = load_dataset("folder", root=tmp_path, resolution=4, channels=1)
    assert grey.in_channels == 1 and grey.train[0][0].shape == (1, 4, 4)


def test_image_folder_without_split_folders_is_split_stratified(tmp_path):
    pytest.importorskip("PIL")
    for cls in ("a", "b"):
        for i in range(5):
            _write_png(tmp_path / cls / f"{i}.jpg", np.full((5, 7, 3), 40 * i, np.uint8))
    splits = load_dataset("folder", root=tmp_path, resolution=8, test_fraction=0.4)
    assert len(splits.train) == 6 and len(splits.test) == 4
    assert sorted(splits.test.targets.tolist()) == [0, 0, 1, 1]


def test_image_folder_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="<root>/train/<class>"):
        load_dataset("folder", root=tmp_path / "nope")
    with pytest.raises(DatasetNotFoundError, match="root='FOLDER'"):
        load_dataset("folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="0 images in 0 class folders"):
        load_dataset("folder", root=tmp_path / "empty")
    with pytest.raises(ValueError, match="need a resolution"):
        load_dataset("folder", root=tmp_path, resolution=None)
    pytest.importorskip("PIL")
    _write_png(tmp_path / "s" / "train" / "a" / "0.png", np.zeros((4, 4, 3), np.uint8))
    _write_png(tmp_path / "s" / "test" / "z" / "0.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DatasetFormatError, match=r"missing from train: \['z'\]"):
        load_dataset("folder", root=tmp_path / "s")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DatasetFormatError, match="cannot decode"):
        read_image(tmp_path / "bad.png")


def test_png_without_pillow_reads_through_matplotlib(tmp_path, monkeypatch):
    import matplotlib.image

    from layerscope.datasets import folder

    array = np.random.default_rng(5).random((3, 4, 3)).astype(np.float32)
    matplotlib.image.imsave(tmp_path / "a.png", array)
    with_pil = read_image(tmp_path / "a.png")
    monkeypatch.setattr(folder, "_has_pil", lambda: False)
    without = read_image(tmp_path / "a.png")
    np.testing.assert_allclose(without.numpy(), with_pil.numpy(), atol=1e-6)
    np.testing.assert_allclose(without.permute(1, 2, 0).numpy(), array, atol=1 / 255)
    (tmp_path / "b.jpg").write_bytes(b"")
    with pytest.raises(DatasetFormatError, match="pip install pillow"):
        read_image(tmp_path / "b.jpg")
