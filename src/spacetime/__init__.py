"""Space Time: LLM agents co-write a book as a parallel evolutionary tournament."""

__version__ = "0.1.0"
