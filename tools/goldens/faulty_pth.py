"""Writes a tiny PyTorch checkpoint with an F64 tensor, in torch.save's zip format, without
torch: the fixture of the "a float tensor of another dtype is refused, named" test.

Output: crates/accrue-encoders/tests/fixtures/encoders/f64_tensor.pth holding `fc1.weight`
(float64, [2, 3]) and `fc1.bias` (float32, [2]). Run from the repository root:
    python3 tools/goldens/faulty_pth.py
"""

import collections
import io
import pickle
import struct
import sys
import types
import zipfile

# Stand-ins for the names torch.save pickles by reference.
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")


def _make_class(name):
    cls = type(name, (), {})
    cls.__module__ = "torch"
    setattr(torch, name, cls)
    return cls


DoubleStorage = _make_class("DoubleStorage")
FloatStorage = _make_class("FloatStorage")


def _rebuild_tensor_v2(*args):
    raise NotImplementedError


_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils


class Storage:
    def __init__(self, key, cls, numel):
        self.key, self.cls, self.numel = key, cls, numel


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride = tuple(
            int(__import__("math").prod(self.shape[i + 1 :])) for i in range(len(self.shape))
        )
        return (
            _rebuild_tensor_v2,
            (self.storage, 0, tuple(self.shape), stride, False, collections.OrderedDict()),
        )


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None


def main():
    weight = [0.5, -1.0, 2.0, 0.25, 1.5, -0.75]
    bias = [0.1, -0.2]
    state = collections.OrderedDict(
        [
            ("fc1.weight", Tensor(Storage("0", DoubleStorage, 6), [2, 3])),
            ("fc1.bias", Tensor(Storage("1", FloatStorage, 2), [2])),
        ]
    )
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(state)
    out = "crates/accrue-encoders/tests/fixtures/encoders/f64_tensor.pth"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/data/0", struct.pack("<6d", *weight))
        z.writestr("archive/data/1", struct.pack("<2f", *bias))
        z.writestr("archive/version", "3\n")
    print(out)


if __name__ == "__main__":
    main()
