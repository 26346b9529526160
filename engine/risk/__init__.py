"""What may trade: the global pause, market hours, the drawdown guard."""
