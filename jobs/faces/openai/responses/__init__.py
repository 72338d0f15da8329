"""OpenAI's Responses API on the OpenAI face (/v1/responses), one job per response."""
