"""Every limit of the wire protocol, written once (the agent, client and server use these)."""

from __future__ import annotations

from ..specs import CONTEXT_LENGTH

#: GALACTICA's vocabulary (every size): token ids are 0..VOCAB_SIZE-1
VOCAB_SIZE = 50_000
#: choices per request (sampled, or beams): the engine batches at most this many per prompt
MAX_N = 16
MAX_PROMPTS = 16
MAX_STOPS = 16
MAX_STOP_CHARS = 512
MAX_STOP_TOKEN_IDS = 64
MAX_LOGIT_BIAS = 300  # OpenAI's own limit
MAX_LOGPROBS = 20
MAX_MODEL_BYTES = 255
MAX_CHOICES = 20_000
MAX_CHOICE_CHARS = 512
#: The prompt is checked in characters before it is tokenised, so that no request makes the
#: agent tokenise megabytes. GALACTICA's context is 2,048 tokens; its tokens average about
#: 4 characters and very few are longer than 32, so 64 KiB of text is always more than a full
#: context. A longer text is accepted only with ``truncate_prompt_tokens`` (the agent then
#: tokenises just its last MAX_PROMPT_CHARS characters: the tokens kept are the same).
MAX_PROMPT_CHARS = 64 * 1024
#: token-id prompts: a full context; more only with ``truncate_prompt_tokens``
MAX_PROMPT_IDS = CONTEXT_LENGTH
MAX_TRUNCATED_PROMPT_IDS = 32 * CONTEXT_LENGTH
#: temperatures between 0 and this sample from a distribution that float32 can't represent
#: (3e-39 made every logit infinite); OpenAI's and vLLM's floor is the same 0.01
MIN_TEMPERATURE = 0.01
MAX_TEMPERATURE = 2.0
MIN_TOP_P = 1e-3
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # vLLM's range for seed
#: The request body, bytes. A full context of text is ~10 KB and the longest prompt accepted
#: 64 KiB (256 KiB as JSON escapes); a grounded citation's choice list of 20,000 library
#: entries ("Title, Author", ~70 characters each) is ~1.5 MB. 4 MiB holds both with room.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: nesting of JSON bodies (ours need 3 levels)
MAX_JSON_DEPTH = 32
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]{1,2})?)$"
