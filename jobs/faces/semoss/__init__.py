"""The SEMOSS face: pixels over form posts, polled by jobId."""
