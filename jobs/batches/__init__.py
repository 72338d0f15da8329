"""OpenAI's Batch API at its core: files kept in a Django storage, batches whose lines run as
jobs of class `batch`, and the runner that turns an input file into an output file."""
