"""The engine: load GALACTICA with transformers and generate (imports torch)."""

from .galactica import Galactica, sampling_params
from .loading import LoadedModel, LoadOptions, load_model, pick_device, pick_dtype
from .sampling import SamplingParams
from .scheduler import ChoiceResult, Completion, Delta, Engine, Finished, PromptTooLong, QueueFull
from .tokenizer import encode, load_tokenizer

__all__ = [
    "ChoiceResult",
    "Completion",
    "Delta",
    "Engine",
    "Finished",
    "Galactica",
    "LoadOptions",
    "LoadedModel",
    "PromptTooLong",
    "QueueFull",
    "SamplingParams",
    "encode",
    "load_model",
    "load_tokenizer",
    "pick_device",
    "pick_dtype",
    "sampling_params",
]
