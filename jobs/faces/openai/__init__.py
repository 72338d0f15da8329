"""The OpenAI face (/v1): chat completions in both modes, stored completions, models."""
