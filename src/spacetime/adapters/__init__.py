"""Adapters: the model backends (``llm``) and PostgreSQL (``pg``), behind the ports the engine uses."""
