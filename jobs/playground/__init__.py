"""The playground: a page where a signed-in person runs a prompt and watches it stream."""
