"""Load a safetensors checkpoint straight into the target dtype, a slice at a time.

``from_pretrained`` memory-maps the checkpoint: every page it touches stays resident (and
counted in the process's RSS) while the mapping lives, beside the converted copy. A float32
checkpoint loaded as bfloat16 so peaks at three times the weights' bytes (galactica-125m:
1,063 MiB peak for 238 MiB of weights; the 1.3b shape: about 7.7 GiB for 2.5 GiB). Here each
tensor is read with plain file reads (the page cache is not the process's memory) in slices
of :data:`CHUNK_BYTES`, converted into a tensor allocated once in the target dtype, and
assigned into a model built on the meta device: the peak is the weights plus one slice.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn
from transformers import GenerationConfig, OPTForCausalLM, PretrainedConfig

log = logging.getLogger(__name__)

#: bytes read per slice while converting one tensor
CHUNK_BYTES = 16 << 20
#: safetensors dtype names this loader reads
_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def safetensors_files(source: Path) -> list[Path] | None:
    """The checkpoint's safetensors files (one, or the shards of an index); None if it has none."""
    index = source / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [source / name for name in shards]
    single = source / "model.safetensors"
    return [single] if single.is_file() else None


def _header(path: Path) -> tuple[dict, int]:
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
    header.pop("__metadata__", None)
    return header, 8 + size


def _read_into(f, target: torch.Tensor) -> None:
    """Fill the contiguous ``target`` with the next bytes of ``f`` (raw reads may be short)."""
    view = memoryview(target.view(-1).view(torch.uint8).numpy())
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            raise ValueError(f"{f.name}: the file ends inside a tensor")
        done += got


def read_tensors(path: Path, dtype: torch.dtype) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of one safetensors file as ``dtype``, converted slice by slice."""
    header, base = _header(path)
    order = sorted(header.items(), key=lambda item: item[1]["data_offsets"][0])
    unknown = {info["dtype"] for _, info in order} - set(_DTYPES)
    if unknown:
        raise ValueError(f"{path.name}: tensor dtypes {sorted(unknown)} are not read here")
    with open(path, "rb", buffering=0) as f:
        buffer: torch.Tensor | None = None
        for name, info in order:
            source = _DTYPES[info["dtype"]]
            start, end = info["data_offsets"]
            out = torch.empty(info["shape"], dtype=dtype)
            if (end - start) != out.numel() * source.itemsize:
                raise ValueError(f"{path.name}: {name} has {end - start} bytes for its shape")
            f.seek(base + start)
            if source == dtype:
                _read_into(f, out)
                yield name, out
                continue
            flat = out.view(-1)
            step = max(1, CHUNK_BYTES // source.itemsize)
            if buffer is None or buffer.dtype != source:
                buffer = torch.empty(step, dtype=source)
            for at in range(0, flat.numel(), step):
                part = buffer[: min(step, flat.numel() - at)]
                _read_into(f, part)
                flat[at : at + part.numel()].copy_(part)
            yield name, out


def _layer_index(key: str) -> int | None:
    head = key.removeprefix("model.decoder.layers.")
    number = head.split(".", 1)[0]
    return int(number) if head != key and number.isdigit() else None


def load_direct(
    source: str,
    config: PretrainedConfig,
    dtype: torch.dtype,
    progress: Callable[[float], None] | None = None,
    per_layer: Callable[[nn.Module], object] | None = None,
) -> OPTForCausalLM | None:
    """The model of ``source`` on the CPU in ``dtype``, its weights read straight into that
    dtype; None (with the reason logged) where this loader does not apply: no safetensors
    files, other dtypes, or tensor names that are not exactly the model's (the caller then
    uses ``from_pretrained``). ``per_layer(layer)`` runs on each decoder layer as soon as its
    weights are read (e.g. int8 quantization: the layer's bfloat16 weights are then freed
    before the next layer is read, so they never all exist at once)."""
    files = safetensors_files(Path(source))
    if not files:
        return None
    with torch.device("meta"):
        model = OPTForCausalLM._from_config(config, dtype=dtype)
    expected = set(model.state_dict())
    tied = set(getattr(model, "_tied_weights_keys", None) or {})
    if not config.tie_word_embeddings:
        tied = set()
    wanted = expected - tied
    layers = model.model.decoder.layers
    pending = {i: {k for k in wanted if k.startswith(f"model.decoder.layers.{i}.")} for i in
               range(len(layers))}  # fmt: skip
    state: dict[str, torch.Tensor] = {}
    done: set[str] = set()
    try:
        for i, path in enumerate(files):
            for name, tensor in read_tensors(path, dtype):
                key = name if name in expected else f"model.{name}"
                if key in tied:
                    continue  # a tied copy saved anyway: the embeddings hold the values
                if key not in wanted:
                    log.info("direct load: %s holds %s, not a weight of the model", path, name)
                    return None
                state[key] = tensor
                index = _layer_index(key)
                if per_layer is None or index is None or index not in pending:
                    continue
                pending[index].discard(key)
                if not pending[index]:  # the layer is complete: load it, hand it over
                    del pending[index]
                    prefix = f"model.decoder.layers.{index}."
                    part = {k: state.pop(k) for k in [k for k in state if k.startswith(prefix)]}
                    layers[index].load_state_dict(
                        {k.removeprefix(prefix): v for k, v in part.items()}, assign=True
                    )
                    done.update(part)
                    del part, tensor
                    per_layer(layers[index])
            if progress:
                progress((i + 1) / len(files))
    except (OSError, ValueError, KeyError) as err:
        log.info("direct load not possible (%s); using from_pretrained", err)
        return None
    if set(state) | done != wanted:
        missing = sorted(wanted - set(state) - done)
        log.info("direct load: missing %s; using from_pretrained", missing)
        return None
    model.load_state_dict(state, strict=False, assign=True)
    del state
    model.tie_weights()
    handed = tuple(f"model.decoder.layers.{i}." for i in range(len(layers)) if i not in pending)
    if any(  # per_layer may leave placeholders on the meta device (engine/int8.py)
        p.device.type == "meta" and not n.startswith(handed) for n, p in model.named_parameters()
    ):
        log.info("direct load left weights unset; using from_pretrained")
        return None
    model.config._name_or_path = source
    if (Path(source) / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(source)
    return model.eval()
