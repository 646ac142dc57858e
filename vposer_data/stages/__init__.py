"""The three stages, one module each: a function from one split's inputs to its outputs."""
