"""CPU fast paths: weights prepacked once for oneDNN, and a plain attention for decoding steps.

**Prepacked weights.**
Decoding one token multiplies a single row by every weight matrix, so its speed is the speed
at which the weights stream from memory. ``nn.Linear`` on the CPU reaches about a third of
the machine's bandwidth for such products in bfloat16; the same product on a weight that
oneDNN reordered into its blocked layout once, at load time, runs about 2x faster with the
same numbers (PyTorch's inductor does this reordering under ``freezing``; vLLM's CPU backend
prepacks its weights likewise). Measured on galactica-125m, one thread, AMD EPYC (Zen 5):
bfloat16 decoding 46 -> 87 tokens/s, identical tokens; float32 decoding 31 -> 39 tokens/s and
a 1,024-token prefill 2.1 -> 1.1 s, results equal to ~1e-6.

**Decoding attention.** For one new token per sequence, PyTorch's fused CPU attention
(``scaled_dot_product_attention``, flash kernel) in bfloat16 costs about 1 ms per layer at a
1,000-token context, more than the layer's matrix products: decoding after a 1,000-token
document ran at 36 tokens/s. Two float32 matrix products and a softmax do the same in a third
to a fifth of the time (decoding after 1,000 tokens: 56 tokens/s; at 32 tokens of context the
step is unchanged). float32 models gain nothing from this (the fused float32 kernel is fast), so it
is used for bfloat16 only. Greedy bfloat16 output can differ from SDPA's where two tokens are
within bfloat16 rounding of each other (the logits agree to ~1e-2).
Where numba works, :mod:`.bf16_attention`'s kernel computes the same float32 arithmetic
reading the bfloat16 cache once, without the float32 copies (1.7-9x faster at 1,000 tokens:
``benchmarks/attention.py``).

**Prompt attention.** For prompts the fused bfloat16 kernel was half of a 1,000-token
galactica-125m prefill (29 ms per layer on one thread, more than the layer's products).
:func:`prompt_attention` computes what transformers' eager OPT attention computes in bfloat16
(bfloat16 score products, float32 softmax, bfloat16 probabilities), a block of query rows at a
time over only the keys they can see: a 1,000-token prefill in chunks of 256 went from 0.74 to
0.62 s on one thread and from 0.42 to 0.33 s on two (2-core EPYC). Its logits are those of the
eager attention, as close to float32's as SDPA's (600 tokens, random weights: max difference
0.037 against SDPA's 0.040, greedy choices agreeing at 97.2% of positions against 96.5%).

**Fewer, larger products.** A decoding step is some 73 small oneDNN calls at ~13 µs of fixed
cost each (BENCHMARKS.md §7). :func:`fuse_qkv` makes the three attention projections one
product over their concatenated weights (the query's scale folded in where it is a power of
two, which is exact), and :func:`fuse_gelu` lets oneDNN apply the GELU inside fc1's product
(a post-op) instead of a separate pass over its output. In float32 both give bit-identical
results; in bfloat16 the fused GELU rounds once instead of twice.

**Decoding one or two sequences** reads oneDNN's packed weights more slowly than
:mod:`.few_rows`' numba kernels read the plain ones (galactica-125m steps: float32, one or two
sequences, 1.16-1.44x as fast with them; bfloat16, one or two, 1.4-1.8x). Where memory
allows (:func:`.few_rows.keeps_plain`), :func:`pack_linears` keeps the plain weights beside the
packed copies for them (:class:`PackedLinear` ``few_rows``).

**bfloat16 without oneDNN's packed copy.** Where :mod:`.blocked`'s AVX-512 BF16 kernel runs
(:func:`.blocked.kernel`), a bfloat16 model's weights are blocked for it instead of packed for
oneDNN: one copy, faster than oneDNN's at every row count measured (1-256 rows), so the
largest models decode through it and :mod:`.few_rows` keeps its plain copies only where it
did before.
"""

from __future__ import annotations

import functools
import logging
import math
import platform
import types

import torch
from torch import nn

from . import bf16_attention, blocked, few_rows, widened
from .widened import WidenedLinear

log = logging.getLogger(__name__)


def can_pack(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether packing works and was measured to help here: float32, or bfloat16 where oneDNN
    runs it natively, on an x86-64 CPU."""
    if device.type != "cpu" or platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    if dtype not in (torch.float32, torch.bfloat16) or not torch.backends.mkldnn.is_available():
        return False
    if dtype == torch.float32:
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU runs bfloat16 products natively (oneDNN's bfloat16 kernels: AVX-512 BF16,
    AMX): where it does not, bfloat16 models compute in float32 (:mod:`.widened`)."""
    return can_pack(torch.bfloat16, torch.device("cpu"))


def kept_or_placeholder(linear: nn.Linear, tied: bool, dtype: torch.dtype) -> nn.Parameter:
    """What a repacked linear keeps as ``weight``: the original where another module shares it
    (tied embeddings), else a placeholder on the meta device (the packed copy holds the data;
    the placeholder keeps shape and dtype for counting bytes)."""
    if tied:
        return linear.weight
    placeholder = torch.empty(linear.weight.shape, dtype=dtype, device="meta")
    return nn.Parameter(placeholder, requires_grad=False)


class PackedLinear(nn.Module):
    """``nn.Linear`` over a oneDNN-prepacked weight (inference only).

    ``weight`` stays a parameter of the original shape, so counting parameters and their bytes
    still works: the shared tensor itself when the weight is tied to another module (the output
    projection and the token embeddings) or kept for :mod:`.few_rows` (``few_rows_too``: its
    kernel then computes products of a few rows), else a placeholder on the meta device (no
    memory; the packed copy holds the values).
    """

    def __init__(
        self,
        linear: nn.Linear,
        tied: bool,
        hint: int = 1,
        few_rows_too: bool = False,
        pack: bool = True,
        blocked_too: bool = False,
    ) -> None:
        super().__init__()
        #: post-op applied inside the product: "none" or "gelu" (:func:`fuse_gelu`)
        self.activation = "none"
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach()
        #: ``pack`` and ``blocked_too`` (a bfloat16 weight the kernel takes): the weight blocked
        #: for :mod:`.blocked`'s kernel, which then computes every product the few-row kernel
        #: does not (oneDNN's packed copy is not made); else None
        self.blocked = blocked.BlockedWeight(weight, linear.bias) if pack and blocked_too else None
        #: the packed copy, in the layout oneDNN picks for this many rows (PACK_HINTS); None
        #: (``pack`` False, a tied weight only): more rows than the kernel's by the plain one
        #: (or blocked)
        packs = pack and self.blocked is None
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, hint) if packs else None
        self.bias = linear.bias
        self.weight = kept_or_placeholder(linear, tied or few_rows_too, weight.dtype)
        #: products of up to few_rows.row_limit(dtype) rows by few_rows' kernel on the plain weight
        #: (kept for it), or None
        self.few_rows = few_rows.FewRows(self.weight, self.bias) if few_rows_too else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.few_rows is not None:
            out = self.few_rows(x, self.activation)
            if out is not None:
                return out
        if self.blocked is not None:
            return self.blocked(x, self.activation)
        if self.packed is None:
            return nn.functional.linear(x, self.weight, self.bias)
        return torch.ops.mkldnn._linear_pointwise(
            x, self.packed, self.bias, self.activation, [], "none"
        )

    def extra_repr(self) -> str:
        post = "" if self.activation == "none" else f", post-op={self.activation}"
        if self.few_rows is not None:
            post += f", up to {self.few_rows.max_rows} rows: numba"
        packed = "oneDNN" if self.packed is not None else "no (plain weight)"
        if self.blocked is not None:
            packed = "blocked (AVX-512 BF16 kernel)"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"packed={packed}{post}"
        )


#: the batch size oneDNN is told to expect when it packs a weight, per dtype: it picks the
#: layout from it. Measured on the 2-core AMD EPYC (Zen 4, AVX-512) of BENCHMARKS.md, whole
#: decoding steps of galactica-125m: float32 16.0 ms packed for one row, 11.0 ms packed for
#: four (the same with 1 and 2 threads; every matrix shape gained 15-40%); bfloat16 8.1 ms
#: for one row, 8.4 ms for four. Results are the same products (tested against nn.Linear).
PACK_HINTS = {torch.float32: 4, torch.bfloat16: 1}


def pack_linears(model: nn.Module, own_copies: bool = True) -> int:
    """Replace every float32 or bfloat16 ``nn.Linear`` of ``model`` on the CPU by a
    :class:`PackedLinear`, after checking on the first one that the packed product gives the
    same result; returns how many were replaced (0 when packing is unavailable or disagrees:
    the model is then unchanged). ``own_copies``: copy the other parameters too, for weights
    still backed by a memory-mapped checkpoint (not needed after :mod:`.direct` loading)."""
    linears = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is nn.Linear
        and child.weight.dtype in (torch.float32, torch.bfloat16)
        and child.weight.device.type == "cpu"
    ]
    if not linears:
        return 0
    # a weight another module holds too (tied embeddings) must stay a dense tensor there
    users: dict[int, int] = {}
    for module in model.modules():
        for param in module.parameters(recurse=False):
            users[id(param)] = users.get(id(param), 0) + 1
    try:
        with torch.no_grad():
            probe = linears[0][2]
            seeded = torch.Generator().manual_seed(0)  # leave the global random state alone
            x = torch.randn(3, probe.in_features, generator=seeded).to(probe.weight.dtype)
            packed = PackedLinear(probe, tied=True)
            if not torch.allclose(packed(x).float(), probe(x).float(), rtol=1e-2, atol=1e-2):
                log.warning("oneDNN weight packing disagrees with nn.Linear here; not packing")
                return 0
    except (RuntimeError, AttributeError) as err:
        log.info("oneDNN weight packing unavailable (%s); not packing", err)
        return 0
    del probe, packed
    count = len(linears)
    dtype = linears[0][2].weight.dtype
    hint = PACK_HINTS.get(dtype, 1)
    # what keeping the plain weights costs: those not held elsewhere anyway (tied)
    plain_bytes = sum(
        child.weight.nbytes for _, _, child in linears if users.get(id(child.weight), 0) <= 1
    )
    keep_plain = few_rows.keeps_plain(dtype, plain_bytes)
    if keep_plain:
        log.info(
            "%s: the plain weights (%.0f MB) stay beside oneDNN's packed copies, for "
            "decoding steps of up to %d sequences",
            str(dtype).removeprefix("torch."),
            plain_bytes / 1e6,
            few_rows.row_limit(dtype),
        )
    # a tied weight stays anyway (the output projection): the kernel costs no memory there
    # (galactica-1.3b's in bfloat16: 1.39-1.42x as fast, 8% of a step's bytes). Where the
    # layers' plain copies are too big to keep, it has no packed copy either: at galactica-1.3b
    # (bfloat16) that copy is 205 MB for its products of 3-32 rows, which the plain weight
    # computes 1.2-1.6x slower: 3-4% of such a step (a batch or a search; 2 threads, Zen 4).
    # galactica-125m keeps both: its output projection is 31% of a step's bytes
    tied_kernel = keep_plain or few_rows.keeps_plain(dtype, 0)
    # bfloat16: one blocked copy instead of oneDNN's packed one, where the kernel runs here
    use_blocked = dtype == torch.bfloat16 and blocked.kernel() is not None
    with torch.no_grad():  # one matrix at a time: each dense weight is freed once replaced
        while linears:
            parent, name, child = linears.pop()
            tied = users.get(id(child.weight), 0) > 1
            kernel_too = keep_plain or (tied and tied_kernel)
            pack = keep_plain or not (tied and tied_kernel)
            blocked_too = use_blocked and blocked.fits(child.weight)
            packed = PackedLinear(
                child, tied, hint, few_rows_too=kernel_too, pack=pack, blocked_too=blocked_too
            )
            setattr(parent, name, packed)
            del child, packed
        # tensors loaded straight from a memory-mapped checkpoint keep the whole file mapped
        # (and resident: packing read every page); own copies of the rest let it go
        for param in model.parameters() if own_copies else ():
            if param.device.type == "cpu":
                param.data = param.data.clone()
    return count


#: the attention implementation name registered with transformers (see :func:`use_decode_attention`)
DECODE_ATTENTION = "galactica_cpu_decode"


#: query rows per block of :func:`prompt_attention` (float32 scores of heads x rows x keys)
PROMPT_BLOCK = 128


def prompt_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    in_float32: bool = False,
) -> torch.Tensor:
    """Causal attention of several new tokens (the last ``query`` rows of ``key``'s) with the
    numerics of transformers' eager OPT attention in bfloat16: scores as bfloat16 products,
    softmax in float32, probabilities rounded to bfloat16 for the product with the values.
    Computed :data:`PROMPT_BLOCK` query rows at a time over the keys they can see. Returns
    ``[batch, tokens, heads, head_dim]``. ``attention_mask``: SDPA's (boolean, True: attend,
    causal) or None (plain causal).

    Where the scaling is folded into the query (the engine's models: :func:`fuse_qkv`) and the
    mask is boolean or None, the bfloat16 scores go to torch's softmax as they are: it computes in
    float32 and rounds once, so the probabilities are the same bits as a float32 copy's softmax
    rounded (tested), without writing and reading that copy. At galactica-125m's shape, scores
    and softmax of a 1,000-token prompt took 7.4 instead of 13.9 ms per layer (2 threads, 2-core
    AMD EPYC), and the whole 1,000-token prefill was 1.03-1.13x as fast (1 and 2 threads, runs
    interleaved).

    ``in_float32``: bfloat16 tensors are widened once and every product is float32's (CPUs
    without bfloat16 arithmetic, where torch's bfloat16 products are several times slower than
    float32's: :mod:`.widened`); the result is rounded to bfloat16 once."""
    rows, keys = query.shape[-2], key.shape[-2]
    offset = keys - rows  # cached tokens before the first query
    out = torch.empty(query.shape, dtype=query.dtype)
    if in_float32:
        query, key, value = query.float(), key.float(), value.float()
    key_t = key.transpose(-1, -2)
    in_float = scaling != 1.0 or (attention_mask is not None and attention_mask.dtype != torch.bool)
    for start in range(0, rows, PROMPT_BLOCK):
        end = min(rows, start + PROMPT_BLOCK)
        seen = offset + end  # causal: no row of this block sees a key past this
        scores = torch.matmul(query[:, :, start:end], key_t[..., :seen])
        if in_float:
            scores = scores.float()
        if scaling != 1.0:
            scores.mul_(scaling)
        # every row of the block sees the keys before its first row; masks differ after
        first = offset + start
        if attention_mask is None:
            later = torch.ones(end - start, seen - first, dtype=torch.bool).triu_(1)
            scores[..., first:].masked_fill_(later, float("-inf"))
        elif attention_mask.dtype == torch.bool:  # a padded row may see nothing: no -inf
            mask = attention_mask[..., start:end, :seen]
            tail = first if bool(mask[..., :first].all()) else 0  # else: padding too
            scores[..., tail:].masked_fill_(~mask[..., tail:], torch.finfo(scores.dtype).min)
        else:
            scores.add_(attention_mask[..., start:end, :seen])
        probs = torch.softmax(scores, dim=-1).to(query.dtype)
        out[:, :, start:end] = torch.matmul(probs, value[:, :, :seen])
    return out.transpose(1, 2).contiguous()


def _decode_attention(
    module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs
):
    """transformers' attention interface: matmul-softmax-matmul for one query per sequence,
    :func:`prompt_attention` for several. Tensors are ``[batch, heads, tokens, head_dim]``."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if dropout:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    if query.shape[-2] != 1:
        widen = query.dtype == torch.bfloat16 and widened.wanted()
        return prompt_attention(query, key, value, attention_mask, scale, widen), None
    out = bf16_attention.attend(query, key, value, attention_mask, scale)
    if out is not None:
        return out, None
    # in float32: exact enough, and faster than bfloat16 products here, whose oneDNN kernels
    # are rebuilt for every new cache length (one more token each step)
    scores = torch.matmul(query.float(), key.float().transpose(-1, -2))
    if scale != 1.0:
        scores = scores * scale
    if attention_mask is not None:  # boolean (True: attend), as for SDPA; or additive
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, float("-inf"))
        else:
            scores = scores + attention_mask
    probs = torch.softmax(scores, dim=-1)
    out = torch.matmul(probs, value.float()).to(query.dtype)
    return out.transpose(1, 2).contiguous(), None


def use_decode_attention(model: nn.Module) -> bool:
    """Switch a bfloat16 model on the CPU to :func:`_decode_attention` (masks as for SDPA);
    False, leaving the model as it was, where that does not apply or transformers refuses."""
    param = next(model.parameters())
    if param.device.type != "cpu" or param.dtype != torch.bfloat16:
        return False
    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    bf16_attention.kernel()  # compiled now (or found in numba's cache), not in a request
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register(DECODE_ATTENTION, _decode_attention)
        AttentionMaskInterface.register(DECODE_ATTENTION, sdpa_mask)
        model.set_attn_implementation(DECODE_ATTENTION)
    except (ImportError, AttributeError, ValueError) as err:
        log.info("keeping SDPA attention (%s)", err)
        return False
    return True


def _fused_attention_forward(
    self, hidden_states, cache=None, attention_mask=None, output_attentions=False, **kwargs
):
    """``OPTAttention.forward`` with the q/k/v projections as one product (``self.qkv``)."""
    from transformers.models.opt.modeling_opt import (
        ALL_ATTENTION_FUNCTIONS,
        eager_attention_forward,
    )

    bsz, tgt_len, _ = hidden_states.size()
    query, key, value = self.qkv(hidden_states).split(self.embed_dim, dim=-1)
    if not self.scaling_folded:
        query = query * self.scaling
    shape = (bsz, -1, self.num_heads, self.head_dim)
    query = query.reshape(shape).transpose(1, 2)
    key = key.reshape(shape).transpose(1, 2)
    value = value.reshape(shape).transpose(1, 2)
    if cache is not None:
        key, value = cache.update(key, value, self.layer_idx, kwargs=kwargs)
    attention = ALL_ATTENTION_FUNCTIONS.get_interface(
        self.config._attn_implementation, eager_attention_forward
    )
    out, weights = attention(
        self,
        query,
        key,
        value,
        attention_mask,
        dropout=0.0 if not self.training else self.dropout,
        scaling=1.0,
        **kwargs,
    )
    out = self.out_proj(out.reshape(bsz, tgt_len, -1).contiguous())
    return out, weights


def fuse_qkv(model: nn.Module) -> int:
    """Make each OPT attention's q/k/v projections one ``nn.Linear`` (``qkv``) over their
    concatenated weights, before packing or quantizing; returns how many were fused."""
    from transformers.models.opt.modeling_opt import OPTAttention

    count = 0
    with torch.no_grad():
        for attn in model.modules():
            if type(attn) is not OPTAttention or not all(
                type(getattr(attn, n, None)) is nn.Linear for n in ("q_proj", "k_proj", "v_proj")
            ):
                continue
            q, k, v = attn.q_proj, attn.k_proj, attn.v_proj
            # a power-of-two scale multiplies exactly: fold it into the query's rows
            folded = math.frexp(attn.scaling)[0] == 0.5
            scale = attn.scaling if folded else 1.0
            qkv = nn.Linear(
                q.in_features, 3 * q.out_features, bias=q.bias is not None, device="meta"
            )
            qkv.weight = nn.Parameter(
                torch.cat([q.weight * scale, k.weight, v.weight]), requires_grad=False
            )
            if q.bias is not None:
                qkv.bias = nn.Parameter(
                    torch.cat([q.bias * scale, k.bias, v.bias]), requires_grad=False
                )
            del attn.q_proj, attn.k_proj, attn.v_proj, q, k, v
            attn.qkv = qkv
            attn.scaling_folded = folded
            attn.forward = types.MethodType(_fused_attention_forward, attn)
            count += 1
    return count


def fuse_gelu(model: nn.Module) -> int:
    """Let oneDNN (or :class:`.WidenedLinear`, or :class:`.int8.Int8Linear`: any product with
    ``fuses_gelu``) apply the exact GELU inside each fc1 (OPT decoder layers whose activation
    is exactly ``F.gelu``); returns how many layers were changed."""
    probe = torch.linspace(-6, 6, 97)
    count = 0
    for layer in model.modules():
        fc1, act = getattr(layer, "fc1", None), getattr(layer, "activation_fn", None)
        products = isinstance(fc1, PackedLinear | WidenedLinear) or getattr(fc1, "fuses_gelu", 0)
        if not products or fc1.activation != "none" or act is None:
            continue
        if not torch.equal(act(probe), torch.nn.functional.gelu(probe)):
            continue  # relu, tanh-GELU, ...: left as they are
        fc1.activation = "gelu"
        layer.activation_fn = nn.Identity()
        count += 1
    return count
