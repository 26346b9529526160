"""From an approval to exactly one broker order: order construction, submission, the sweep, closing positions."""
