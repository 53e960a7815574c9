"""The store of the `state_store` strategy: the latest record of each VIN and its changes."""
