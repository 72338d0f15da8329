"""The API faces: each renders the same chunk log in its own protocol."""
