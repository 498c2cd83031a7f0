"""The autoencoder study: training through the one loop, cached notebook steps, per-sample scores."""
