"""Training of the learned entropy priors (``latentcodec train-prior``)."""
