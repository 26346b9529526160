"""The command layer: status, positions, pause/resume, close-all, producers, accounts as plain data."""
