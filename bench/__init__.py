"""bench: measure speed and memory of models on this device, and check the device targets."""
