"""Resolve a model spec, fetch it, and load GALACTICA with transformers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import AutoConfig, OPTForCausalLM, PreTrainedTokenizerBase

from ..protocol.limits import DTYPES  # written once, in the wire schema
from ..specs import is_local, resolve_model_spec
from . import widened
from .cpu import can_pack, fuse_gelu, fuse_qkv, pack_linears, use_decode_attention
from .direct import load_direct
from .free_memory import release_free_memory
from .int8 import KERNELS, linear_weights, pick_kernel, quantize_linears
from .int8 import keeps_plain as int8_keeps_plain
from .threads import ThreadSetting, apply_threads
from .tokenizer import load_tokenizer
from .widened import can_widen, widen_linears

#: ``progress(phase, fraction)``: phase is "download" or "load", fraction in [0, 1].
ProgressCallback = Callable[[str, float], None]
DEVICES = ("auto", "cpu", "cuda")
QUANTIZE = (None, "8bit", "4bit")


@dataclass
class LoadOptions:
    """How to load: dtype, device, quantization; every field checked by :meth:`validate`."""

    dtype: str = "auto"
    device: str = "auto"
    quantize: Literal["8bit", "4bit"] | None = None
    #: load straight into place, shard by shard (accelerate), not a full copy in RAM first
    low_cpu_mem_usage: bool = True
    #: on x86 CPUs: prepack the weights for oneDNN (bfloat16 decodes about 2x faster) and, in
    #: bfloat16, a plain attention for decoding steps (engine/cpu.py); on CPUs without bfloat16
    #: arithmetic, bfloat16 weights with float32 products instead (engine/widened.py)
    pack_weights: bool = True
    #: with the fast paths: q/k/v as one product, GELU inside fc1 (engine/cpu.py)
    fuse: bool = True
    #: ``quantize="8bit"`` on a CPU: torch's int8 kernel, "auto", "dynamic" or "weight-only"
    #: (engine/int8.py); bitsandbytes serves 8-bit on CUDA
    int8_kernel: str = "auto"
    #: torch's CPU threads: "auto" (time a few decoding steps at load, engine/threads.py), a
    #: number, or None: ``$GALACTICA_THREADS`` if set, else torch's setting as it is
    threads: int | str | None = None
    hub_kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"device {self.device!r} is not one of {', '.join(DEVICES)} or cuda:N")
        if self.quantize not in QUANTIZE:
            raise ValueError(f"quantize {self.quantize!r} is not one of 8bit, 4bit")
        widened.wanted()  # a bad $GALACTICA_BF16_PRODUCTS: refused before loading, not per request
        if self.int8_kernel not in KERNELS:
            raise ValueError(f"int8_kernel {self.int8_kernel!r} is not one of {', '.join(KERNELS)}")
        if self.threads not in (None, "auto") and not (
            isinstance(self.threads, int) and self.threads >= 1
        ):
            raise ValueError(f"threads {self.threads!r}: use 'auto' or a whole number >= 1")


@dataclass
class LoadedModel:
    """A model ready to generate, with the facts the UI shows."""

    spec: str
    model: OPTForCausalLM
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    dtype: torch.dtype
    load_seconds: float
    #: torch's CPU threads where the loader set them (``LoadOptions.threads``), else None;
    #: adaptive where "auto" (the engine goes on measuring: engine/thread_tuner.py)
    thread_setting: ThreadSetting | None = None

    @property
    def threads(self) -> int | None:
        """The count decoding steps start with, where the loader set one."""
        setting = self.thread_setting
        return setting.initial.get("step") if setting is not None else None

    @property
    def weight_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.spec,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "memory_bytes": self.weight_bytes,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "load_seconds": round(self.load_seconds, 2),
            **({"threads": self.threads} if self.threads else {}),
        }


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` is CUDA when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: float16 on GPUs without bfloat16, bfloat16 on newer GPUs and on CPUs that run it
    natively (AVX-512 BF16 / AMX), else float32."""
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if _cpu_runs_bf16() else torch.float32


def _cpu_runs_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def _download(spec: str, progress: ProgressCallback, hub_kwargs: dict[str, Any]) -> str:
    """Fetch a hub model into the local cache, reporting bytes as they arrive."""
    from huggingface_hub import snapshot_download
    from tqdm.auto import tqdm

    class _Reporter(tqdm):  # huggingface_hub drives one bar over all bytes
        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            if self.total:
                progress("download", min(1.0, self.n / self.total))
            return shown

    progress("download", 0.0)
    path = snapshot_download(
        spec,
        allow_patterns=["*.json", "*.safetensors", "*.txt"] if _has_safetensors(spec) else None,
        tqdm_class=_Reporter,
        **hub_kwargs,
    )
    progress("download", 1.0)
    return path


def _has_safetensors(spec: str) -> bool:
    try:
        from huggingface_hub import list_repo_files

        return any(f.endswith(".safetensors") for f in list_repo_files(spec))
    except Exception:
        return False


def load_model(
    spec: str | None = None,
    options: LoadOptions | None = None,
    progress: ProgressCallback | None = None,
) -> LoadedModel:
    """Load a GALACTICA model and its tokenizer from the hub or a local directory.

    ``spec`` is a size (``125m``, ``mini``, ...), a hub id or a directory; ``None`` means
    ``$GALACTICA_MODEL`` or galactica-125m. Never runs remote code.
    """
    options = options or LoadOptions()
    options.validate()
    report = progress or (lambda phase, fraction: None)
    started = time.perf_counter()
    resolved = resolve_model_spec(spec)
    source = resolved if is_local(resolved) else _download(resolved, report, options.hub_kwargs)
    report("load", 0.0)
    config = AutoConfig.from_pretrained(source, trust_remote_code=False)
    if config.model_type != "opt":
        raise ValueError(f"{resolved}: model type {config.model_type!r} is not GALACTICA's (opt)")
    device = pick_device(options.device)
    dtype = pick_dtype(options.dtype, device)
    kwargs: dict[str, Any] = {
        "dtype": dtype,
        "low_cpu_mem_usage": options.low_cpu_mem_usage,
        "trust_remote_code": False,
    }
    cpu_int8 = options.quantize == "8bit" and device.type == "cpu"
    if cpu_int8:
        pick_kernel(options.int8_kernel)  # refuse before loading where there is no kernel
    elif options.quantize:
        kwargs["quantization_config"] = _quantization(options.quantize, dtype)
        kwargs["device_map"] = "auto"
    elif device.type == "cuda" and options.device == "auto" and torch.cuda.device_count() > 1:
        kwargs["device_map"] = "auto"  # accelerate spreads the layers over every GPU
    elif device.type == "cuda":
        kwargs["device_map"] = {"": device}
    model, direct = None, False
    per_layer = None
    if cpu_int8:  # quantize each layer as it is read: its bfloat16 weights never all exist
        # a plain int8 copy for decoding steps beside the packed one: decided for the model
        plain = options.pack_weights and int8_keeps_plain(
            linear_weights(config), options.int8_kernel
        )

        def per_layer(layer: torch.nn.Module) -> None:
            if options.pack_weights and options.fuse:
                fuse_qkv(layer)
            quantize_linears(layer, options.int8_kernel, plain)
            release_free_memory()  # the layer's bfloat16 weights, before the next is read

    if device.type == "cpu" and options.low_cpu_mem_usage and (cpu_int8 or not options.quantize):
        model = load_direct(
            source, config, dtype, lambda f: report("load", 0.8 * f), per_layer=per_layer
        )
        direct = model is not None
    if model is None:
        model = OPTForCausalLM.from_pretrained(source, **kwargs).eval()
    if cpu_int8:
        if options.pack_weights and options.fuse:
            fuse_qkv(model)
        quantize_linears(model, options.int8_kernel, plain)
        if options.pack_weights and options.fuse:
            fuse_gelu(model)
        use_decode_attention(model)
    elif options.pack_weights and not options.quantize:
        # bfloat16 without bfloat16 arithmetic: widened products; else oneDNN's packed ones
        widen = can_widen(dtype, device)
        if widen or can_pack(dtype, device):
            if options.fuse:
                fuse_qkv(model)
            if widen:
                widen_linears(model)
            else:
                pack_linears(model, own_copies=not direct)
            if options.fuse:
                fuse_gelu(model)
            use_decode_attention(model)
    threads = apply_threads(model, options.threads) if device.type == "cpu" else None
    report("load", 0.9)
    tokenizer = load_tokenizer(source)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    if device.type == "cpu":
        release_free_memory()  # what reading and converting the weights freed
    report("load", 1.0)
    return LoadedModel(
        spec=resolved,
        model=model,
        tokenizer=tokenizer,
        device=next(model.parameters()).device,
        dtype=dtype,
        load_seconds=time.perf_counter() - started,
        thread_setting=threads,
    )


def _quantization(kind: str, dtype: torch.dtype) -> Any:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise ValueError(
            f"{kind} quantization needs bitsandbytes: pip install 'galactica_ext[quantize]'"
        ) from err
    from transformers import BitsAndBytesConfig

    if kind == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_type="nf4"
    )
