"""The only place the Kubernetes API is called."""
