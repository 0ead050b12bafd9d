"""The Vision-Language-Action model (VLAPolicy), behavioural-cloning training and offline evaluation."""
