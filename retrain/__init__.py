"""Fine-tuning jobs: data assembly, training, evaluation, and registration of the result."""
