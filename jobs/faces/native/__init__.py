"""The native jobs face (/v1/jobs): create, read, long-poll, stream (SSE) and cancel jobs."""
