"""The model catalog: the server's base model and each user's own fine-tuned models."""
