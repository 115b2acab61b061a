"""Video-streaming lakehouse."""
