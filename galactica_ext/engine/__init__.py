"""The engine: load GALACTICA with transformers and generate (imports torch)."""

from .events import ChoiceResult, Completion, Delta, EngineClosed, Failed, Finished
from .loading import LoadedModel, LoadOptions, load_model, pick_device, pick_dtype
from .model import GalacticaModel, sampling_params
from .sampling import SamplingError, SamplingParams
from .scheduler import Engine, PromptTooLong, QueueFull
from .tokenizer import encode, load_tokenizer

__all__ = [
    "ChoiceResult",
    "Completion",
    "Delta",
    "Engine",
    "EngineClosed",
    "Failed",
    "Finished",
    "GalacticaModel",
    "LoadOptions",
    "LoadedModel",
    "PromptTooLong",
    "QueueFull",
    "SamplingError",
    "SamplingParams",
    "encode",
    "load_model",
    "load_tokenizer",
    "pick_device",
    "pick_dtype",
    "sampling_params",
]
