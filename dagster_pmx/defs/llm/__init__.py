"""The optional LLM signal source (docs/llm.md)."""
