"""Model adapters: implementations of ``spacetime.ports.ChatModel`` / ``Embedder``.

* ``embedded`` — SmolLM2-135M-Instruct GGUF via llama-cpp-python (offline default), run in the model host:
  ``host`` (the supervised child process; ``host_main`` is its side) under ``cpu``'s pure load plan;
* ``openai_compat`` — any OpenAI-compatible server on openai's ``AsyncOpenAI``;
* ``balanced`` — one endpoint over several replicas;
* ``autogen`` — ``PersonaAgent``: a persona as an AutoGen ``AssistantAgent`` on a shared ``ChatModel`` (the only
  module that imports AutoGen);
* ``registry`` — ``EndpointSpec`` → model / embedder;
* ``fake`` — ``ScriptedModel`` and ``HashEmbedder``, for tests only.

Importing this package imports neither llama-cpp-python nor AutoGen; the submodules that need them do.
"""
