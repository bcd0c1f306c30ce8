"""Evaluation: inference on whole volumes, metrics in the original geometry."""
