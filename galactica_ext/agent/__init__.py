"""The local agent: GALACTICA in its own process behind an OpenAI-compatible API.

``runtime`` and ``launcher`` import no torch (the server extension and kernels use them);
``app``, ``host`` and ``serve`` are the agent process itself.
"""
