"""The local agent: GALACTICA in its own process behind an OpenAI-compatible API.

``runtime`` and ``launcher`` import no torch (the server extension and kernels use them);
``app`` (HTTP routes: token and body size checked before the body is read), ``host`` (the
model, swapped in once loaded; ``/health`` built here) and ``serve`` are the agent process
itself. ``openai_api`` maps a request validated by :mod:`galactica_ext.protocol` onto the
engine's ``SamplingParams`` and the engine's results onto the protocol's replies.
"""
