"""The worker: one asyncio event loop per process runs every generation; Celery feeds it jobs."""
