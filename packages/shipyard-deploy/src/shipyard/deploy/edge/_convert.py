"""torch → LiteRT flatbuffers: the float32 graph with litert-torch, the quantized variants from
it with ai-edge-quantizer (the quantizer litert-torch itself builds on).

litert-torch pulls in jax and friends (seconds to import), so it is imported here, only when a
model is exported.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import TYPE_CHECKING

from shipyard.deploy.edge._errors import EdgeExportError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["OPS_DOC", "compact_names", "quantize", "to_tflite"]

OPS_DOC = "https://ai.google.dev/edge/litert/models/ops_compatibility"
_NO_LOWERING = re.compile(r"Lowering not found: (\S+)")
_TARGET = re.compile(r"target=torch\.ops\.(\S+?)\]")
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\s*\n\s*(.+)')
# What litert-torch raises when a graph does not lower: torch.export and jax tracing errors are
# RuntimeError or TypeError; some of its lowerings check their inputs with plain `assert`.
_CONVERSION_ERRORS = (RuntimeError, TypeError, ValueError, NotImplementedError, AssertionError)


def to_tflite(module: nn.Module, n_inputs: int, input_name: str, *, model_target: str) -> bytes:
    """The float32 flatbuffer of ``module`` for one row of ``n_inputs`` features."""
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
    return bytes(edge.model_content())


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
    return bytes(result.quantized_model or b"")
