"""torch → LiteRT flatbuffers: the float32 graph with litert-torch, the quantized variants from
it with ai-edge-quantizer (the quantizer litert-torch itself builds on).

litert-torch pulls in jax and friends (seconds to import), so it is imported here, only when a
model is exported.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shipyard.deploy.edge._errors import EdgeExportError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["OPS_DOC", "batch_dynamic", "compact_names", "quantize", "to_tflite"]

OPS_DOC = "https://ai.google.dev/edge/litert/models/ops_compatibility"
_NO_LOWERING = re.compile(r"Lowering not found: (\S+)")
_TARGET = re.compile(r"target=torch\.ops\.(\S+?)\]")
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\s*\n\s*(.+)')
# What litert-torch raises when a graph does not lower: torch.export and jax tracing errors are
# RuntimeError or TypeError; some of its lowerings check their inputs with plain `assert`.
_CONVERSION_ERRORS = (RuntimeError, TypeError, ValueError, NotImplementedError, AssertionError)


def to_tflite(module: nn.Module, n_inputs: int, input_name: str, *, model_target: str) -> bytes:
    """The float32 flatbuffer of ``module`` for rows of ``n_inputs`` features, any number of
    them (traced at one row, then :func:`batch_dynamic`)."""
    import torch

    # litert-torch prints a progress tree unless told not to; a user may still turn it on.
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    import litert_torch

    sample = {input_name: torch.zeros(1, n_inputs, dtype=torch.float32)}
    with warnings.catch_warnings():
        # torch.export's deprecation chatter is about litert-torch's internals, not the model.
        warnings.simplefilter("ignore")
        try:
            edge = litert_torch.convert(module.eval(), sample_kwargs=sample)
        except _CONVERSION_ERRORS as exc:
            raise _unsupported(exc, model_target) from exc
    return batch_dynamic(bytes(edge.model_content()))


def batch_dynamic(content: bytes) -> bytes:
    """Mark the leading (batch) dimension of a graph traced at batch 1 as dynamic.

    litert-torch 0.10 cannot export a symbolic batch dimension, but a graph whose ops do not fix
    it (see :mod:`shipyard.deploy.edge._graph`) runs at any batch once the interpreter is told
    the new input shape. What in the flatbuffer still says "1" is rewritten:

    - the shape signature of every tensor computed from the input becomes -1 (how LiteRT marks
      a dynamic dimension, and what ``resize_tensor_input(..., strict=True)`` checks);
    - the constant target shape of a RESHAPE of such a tensor (``x.reshape(x.shape[0], ...)`` in
      a model) starts with -1, "the rest";
    - a SLICE or STRIDED_SLICE of it (``torch.split`` along the features) takes every row;
    - SELECT, which litert-torch emits for ``torch.where`` against a constant it expanded to
      ``[1, F]`` and which broadcasts nothing, becomes SELECT_V2 (same operands, broadcasting).

    Constants keep their shapes. The parity gate runs the result at batch 1 and at the size of
    the test split, so a graph this does not fit fails the deploy instead of a device.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    buffers = model.buffers or []

    def constant(tensor: object) -> bool:
        index = int(getattr(tensor, "buffer", 0) or 0)
        data = buffers[index].data if 0 < index < len(buffers) else None
        return data is not None and len(data) > 0

    def opcode(builtin: int) -> int:
        """The index of ``builtin`` in the model's operator codes, added when missing."""
        for index, code in enumerate(model.operatorCodes):
            if max(int(code.builtinCode), int(code.deprecatedBuiltinCode)) == builtin:
                return index
        code = schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
        model.operatorCodes.append(code)
        return len(model.operatorCodes) - 1

    for subgraph in model.subgraphs or []:
        tensors = subgraph.tensors or []
        for tensor in tensors:
            shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
            if shape and shape[0] == 1 and not constant(tensor):
                tensor.shapeSignature = [-1, *shape[1:]]
        for op in subgraph.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
            if builtin == schema.BuiltinOperator.SELECT:
                op.opcodeIndex = opcode(schema.BuiltinOperator.SELECT_V2)
                op.builtinOptionsType = schema.BuiltinOptions.SelectV2Options
                op.builtinOptions = schema.SelectV2OptionsT()
                continue
            if op.inputs is None or len(op.inputs) < 2 or constant(tensors[op.inputs[0]]):
                continue
            if builtin == schema.BuiltinOperator.RESHAPE:
                _leading_one_to_minus_one(tensors[op.inputs[1]], buffers, constant)
                options = op.builtinOptions
                shape = getattr(options, "newShape", None)
                if shape is not None and len(shape) and shape[0] == 1:
                    options.newShape = [-1, *list(shape)[1:]]
            elif builtin == schema.BuiltinOperator.SLICE and len(op.inputs) == 3:
                # torch.split along the features lowers to SLICE(begin [0, j], size [1, n]):
                # size -1 is "every row".
                if _first(tensors[op.inputs[1]], buffers) == 0:
                    _leading_one_to_minus_one(tensors[op.inputs[2]], buffers, constant)
            elif builtin == schema.BuiltinOperator.STRIDED_SLICE and len(op.inputs) == 4:
                # begin 0, end 1, stride 1 on the batch axis: the end mask makes it "every row".
                begin, end, stride = (_first(tensors[i], buffers) for i in op.inputs[1:4])
                if (begin, end, stride) == (0, 1, 1):
                    op.builtinOptions.endMask = int(op.builtinOptions.endMask or 0) | 1
    builder = flatbuffers.Builder(len(content))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _first(tensor: Any, buffers: list[Any]) -> int | None:
    """The first value of a constant int32 tensor (None when it is not one)."""
    import numpy as np

    data = buffers[tensor.buffer].data if 0 < int(tensor.buffer or 0) < len(buffers) else None
    if data is None or len(data) < 4:
        return None
    return int(np.frombuffer(bytes(bytearray(data[:4])), dtype=np.int32)[0])


def _leading_one_to_minus_one(tensor: Any, buffers: list[Any], constant: Callable[[Any], bool]) -> None:
    """A constant shape or size whose first entry (the batch) is 1: make that entry -1."""
    import numpy as np

    if not constant(tensor):
        return
    buffer = buffers[tensor.buffer]
    dims = np.frombuffer(bytes(bytearray(buffer.data)), dtype=np.int32).copy()
    if len(dims) and dims[0] == 1:
        dims[0] = -1
        buffer.data = np.frombuffer(dims.tobytes(), dtype=np.uint8)


def _unsupported(exc: BaseException, model_target: str) -> EdgeExportError:
    text = str(exc)
    lowering = _NO_LOWERING.search(text)
    target = _TARGET.search(text)
    op = (lowering.group(1) if lowering else target.group(1) if target else "").removesuffix(".default")
    # torch.export lists the module call chain from the outside in: the last frame is the line
    # of model code that called the op.
    _, _, traceback = text.partition("Original traceback:")
    frames = _FRAME.findall(traceback)
    source = frames[-1] if frames else None
    where = f"{source[0]}:{source[1]} in {source[2]}: {source[3].strip()}" if source else None
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if op:
        message = f"the model cannot be exported to LiteRT: litert-torch has no lowering for the op {op}"
        if not lowering:
            message += f" ({first})"
    else:
        message = f"the model cannot be exported to LiteRT: {type(exc).__name__}: {first}"
    return EdgeExportError(
        message,
        where=where,
        key="model._target_",
        value=model_target,
        fix=(
            f"replace {op or 'the failing op'} in the network with ops LiteRT supports (see {OPS_DOC}), "
            "or compute it in preprocessing instead of the model; or drop 'edge' from deploy.targets "
            "for this project. Rerun with --verbose for litert-torch's full message"
        ),
    )


def compact_names(content: bytes) -> bytes:
    """Rename the graph's internal tensors ``t<i>``.

    litert-torch names every tensor after its module path
    (``shipyard.deploy.edge._graph.EdgeModule/shipyard.train.models.MLP_net/...``): debug
    information that makes up a fifth to a third of a small model's file and is never read on a
    device. The input and output keep their names; signatures refer to tensors by index."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    for subgraph in model.subgraphs or []:
        keep = {int(i) for i in [*subgraph.inputs, *subgraph.outputs]}
        for i, tensor in enumerate(subgraph.tensors or []):
            if i not in keep:
                tensor.name = f"t{i}".encode()
    builder = flatbuffers.Builder(len(content))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def quantize(fp32: bytes, variant: str) -> bytes:
    """``int8``: dynamic-range (int8 weights, activations quantized at run time);
    ``fp16``: float16 weights, float32 compute."""
    from ai_edge_quantizer import qtyping, quantizer, recipe

    try:
        if variant == "int8":
            q = quantizer.Quantizer(fp32, recipe.dynamic_wi8_afp32())
        else:
            q = quantizer.Quantizer(fp32)
            q.add_weight_only_config(
                regex=".*",
                operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                num_bits=16,
                algorithm_key=quantizer.AlgorithmName.FLOAT_CASTING,
            )
        result = q.quantize(enable_progress_report=False)
    except (RuntimeError, ValueError, NotImplementedError) as exc:
        raise EdgeExportError(
            f"ai-edge-quantizer cannot make the {variant} variant: {exc}",
            key="deploy.edge.variants",
            value=variant,
            fix=f"remove {variant} from deploy.edge.variants (fp32 does not need the quantizer)",
        ) from exc
    # The quantizer rebuilds the flatbuffer: mark the batch dimension again.
    return batch_dynamic(bytes(result.quantized_model or b""))
