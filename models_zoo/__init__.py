"""Pretrained models: a manifest and loaders."""
