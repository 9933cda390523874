"""An ONNX graph whose weights stay on disk: initializers read, replaced and written one tensor at a time.

`onnx.load` reads every weight into the graph's protobuf, and each graph step that copied the model
(transposes, quantization, fp16) held another: an int8 export of the 0.5B model peaked at 4.4x its
fp32 bytes (docs/results.md). Here the graph is loaded without its weights; a step reads the one
tensor it works on (`array`), writes its result to a scratch data file beside the graph (`put`),
and `save` streams every tensor into the export's single data file. Memory stays at the graph,
the largest tensor and what a step keeps of its own.
"""
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import uses_external_data

INLINE_BELOW = 1024     # bytes: smaller tensors stay in the graph (as onnx.save's size_threshold did)
CHUNK = 64 << 20        # bytes copied at a time when a tensor moves between data files
PACKED_TYPES = {TensorProto.INT4, TensorProto.UINT4}


def _external(tensor: TensorProto) -> dict:
    return {e.key: e.value for e in tensor.external_data}


def _point_at(tensor: TensorProto, location: str, offset: int, length: int) -> None:
    """Make `tensor` read its values from bytes [offset, offset + length) of `location`."""
    tensor.ClearField("raw_data")
    del tensor.external_data[:]
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def _all_tensors(graph: onnx.GraphProto):
    """Initializers and the tensors of node attributes (Constant values; Optimum moves large ones to its
    data file too), subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                yield attribute.t
            yield from attribute.tensors
            for sub in ([attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else []) + list(attribute.graphs):
                yield from _all_tensors(sub)


class GraphWeights:
    """model: a ModelProto (weights external, inline, or both); folder: where its data files lie;
    scratch_dir: where new tensors go until `save` (default: folder)."""

    def __init__(self, model: onnx.ModelProto, folder: Path, scratch_dir: Path | None = None,
                 owned: tuple[str, ...] = ()):
        self.model = model
        self.folder = Path(folder)
        # Data files this export made and may overwrite (with the scratch file): a replaced tensor of the
        # same size is written over its old bytes, so the disk holds one copy, not one per rewrite.
        self.owned = {Path(folder) / name for name in owned}
        self.scratch_path = Path(scratch_dir or folder) / f".modmt-scratch-{os.getpid()}-{id(self)}.data"
        self.scratch = None

    @classmethod
    def load(cls, path: Path, scratch_dir: Path | None = None, owned: tuple[str, ...] = ()) -> "GraphWeights":
        return cls(onnx.load(str(path), load_external_data=False), Path(path).parent, scratch_dir, owned)

    @property
    def graph(self):
        return self.model.graph

    @property
    def initializers(self) -> dict[str, TensorProto]:
        """Built on each use: graph steps add and remove initializers on the graph directly too."""
        return {init.name: init for init in self.model.graph.initializer}

    def __contains__(self, name: str) -> bool:
        return name in self.initializers

    def array(self, name: str) -> np.ndarray:
        """One initializer's values, read from its data file (a copy the caller owns)."""
        tensor = self.initializers[name]
        if not uses_external_data(tensor):
            return numpy_helper.to_array(tensor)
        ext = _external(tensor)
        if tensor.data_type in PACKED_TYPES:  # two values a byte: onnx unpacks them
            copy = TensorProto(name=name, dims=tensor.dims, data_type=tensor.data_type)
            copy.raw_data = self._read_bytes(tensor)
            return numpy_helper.to_array(copy)
        dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
        count = int(np.prod(tensor.dims, dtype=np.int64))
        with open(self.folder / ext["location"], "rb") as f:
            values = np.fromfile(f, dtype=dtype, count=count, offset=int(ext.get("offset", 0)))
        return values.reshape(tuple(tensor.dims))

    def put(self, name: str, array: np.ndarray, over: str | None = None) -> None:
        """Add or replace an initializer; values of INLINE_BELOW bytes or more go to the scratch file,
        or over the bytes of initializer `over` (default: `name` itself) when it has the same size
        and lies in a file this export may overwrite (the caller no longer reads its old values)."""
        array = np.ascontiguousarray(array)
        reused = self._writable_bytes(over or name, array.nbytes)
        if array.nbytes < INLINE_BELOW:
            tensor = numpy_helper.from_array(array, name)
        elif reused is not None:
            location, offset = reused
            if self.scratch is not None:
                self.scratch.flush()
            with open(self.folder / location, "r+b") as f:
                f.seek(offset)
                f.write(array.reshape(-1).view(np.uint8).data)
            tensor = TensorProto(name=name, dims=array.shape,
                                 data_type=helper.np_dtype_to_tensor_dtype(array.dtype))
            _point_at(tensor, location, offset, array.nbytes)
        else:
            tensor = TensorProto(name=name, dims=array.shape,
                                 data_type=helper.np_dtype_to_tensor_dtype(array.dtype))
            self._to_scratch(tensor, array.reshape(-1).view(np.uint8).data)  # no bytes copy of a large tensor
        self._set(tensor)

    def _writable_bytes(self, name: str, nbytes: int) -> tuple[str, int] | None:
        """(location, offset) of initializer `name` if its bytes may be overwritten by `nbytes` new ones."""
        tensor = self.initializers.get(name)
        if tensor is None or not uses_external_data(tensor):
            return None
        ext = _external(tensor)
        path = (self.folder / ext["location"]).resolve()
        if int(ext["length"]) != nbytes or path not in {p.resolve() for p in (*self.owned, self.scratch_path)}:
            return None
        return ext["location"], int(ext.get("offset", 0))

    def put_tensor(self, tensor: TensorProto) -> None:
        """Add or replace an initializer given as a TensorProto with its values inline (kept bit for bit:
        4-bit types stay packed), its values moved to the scratch file when large. Changes `tensor`."""
        if len(tensor.raw_data) >= INLINE_BELOW:
            self._to_scratch(tensor, tensor.raw_data)
        self._set(tensor)

    def _to_scratch(self, tensor: TensorProto, data) -> None:
        """Append `data` (the tensor's bytes) to the scratch file and point `tensor` at them."""
        if self.scratch is None:
            self.scratch = open(self.scratch_path, "ab")
        offset = self.scratch.seek(0, 2)
        self.scratch.write(data)
        self.scratch.flush()
        _point_at(tensor, os.path.relpath(self.scratch_path, self.folder), offset, self.scratch.tell() - offset)

    def _set(self, tensor: TensorProto) -> None:
        existing = self.initializers.get(tensor.name)
        if existing is not None:
            existing.CopyFrom(tensor)
        else:
            self.graph.initializer.append(tensor)

    def remove(self, name: str) -> None:
        self.graph.initializer.remove(self.initializers[name])

    def read_by_any_node(self, name: str) -> bool:
        return any(name in node.input for node in self.graph.node)

    def tensor(self, name: str) -> TensorProto:
        """A self-contained copy of one initializer (its values inline): for a library call on a one-node model."""
        return numpy_helper.from_array(self.array(name), name)

    def save(self, path: Path, external_data: bool = True) -> None:
        """The graph to `path`, its weights streamed into `<name>.data` beside it (or all inline when
        not `external_data`: for small models only, it holds every weight at once)."""
        data_name = path.name + ".data"
        partial = path.parent / (data_name + ".partial")  # sources may include the file being replaced
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as out:
            for tensor in _all_tensors(self.graph):
                external = uses_external_data(tensor)
                size = int(_external(tensor)["length"]) if external else len(tensor.raw_data)
                if not external_data or size < INLINE_BELOW:
                    if external:
                        self._inline(tensor)
                    continue
                offset = out.tell()
                if external:
                    self._copy(tensor, out)
                else:
                    out.write(tensor.raw_data)
                _point_at(tensor, data_name, offset, out.tell() - offset)
        if external_data:
            os.replace(partial, path.parent / data_name)
            os.chmod(path.parent / data_name, 0o644)  # exports are shared
        else:
            partial.unlink()
        self.folder = path.parent  # every location now resolves against the saved data file
        onnx.save_model(self.model, str(path))

    def _read_bytes(self, tensor: TensorProto) -> bytes:
        ext = _external(tensor)
        with open(self.folder / ext["location"], "rb") as f:
            f.seek(int(ext.get("offset", 0)))
            return f.read(int(ext["length"]))

    def _inline(self, tensor: TensorProto) -> None:
        """Read an external tensor's bytes into the tensor itself."""
        raw = self._read_bytes(tensor)
        del tensor.external_data[:]
        tensor.data_location = TensorProto.DEFAULT
        tensor.raw_data = raw

    def _copy(self, tensor: TensorProto, out) -> None:
        ext = _external(tensor)
        left = int(ext["length"])
        with open(self.folder / ext["location"], "rb") as f:
            f.seek(int(ext.get("offset", 0)))
            while left:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise OSError(f"{ext['location']} ends inside tensor {tensor.name}")
                out.write(chunk)
                left -= len(chunk)

    def close(self) -> None:
        """Drop the scratch file (after `save`, nothing reads it)."""
        if self.scratch is not None:
            self.scratch.close()
            self.scratch = None
        self.scratch_path.unlink(missing_ok=True)
