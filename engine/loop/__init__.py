"""The trading loop: leader lease, ticks, heartbeat."""
