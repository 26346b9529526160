"""Trade management: a signal's life after the fill (producer updates, subscriber controls, limits)."""
