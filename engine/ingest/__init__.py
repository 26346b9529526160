"""Signal intake: producers, signatures, the signal schema, rate limits, storing a signal once."""
