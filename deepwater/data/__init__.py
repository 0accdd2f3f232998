"""The data layer: frames, their checks and encoders, images, augmentation and the batches a net trains on."""
