"""What every layer shares: the error tree, the token format, the principal and identity, per-request
state, durations, timestamps and the expiring map. Nothing here imports the rest of the gateway at run
time (only names for type hints), so every folder may import it."""
