"""The optional LLM signal source: an Ollama chat client with failover, and the prompts and validation of
its signals (issue 23)."""
