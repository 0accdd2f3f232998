"""The deploy layer: export bundles and scoring them without the trainer."""
