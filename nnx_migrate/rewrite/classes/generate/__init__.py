"""Generation: the NNX class written from the analysis of a Linen class."""
