"""Who trades: subscribers, their execution accounts, broker symbol names."""
