"""Pose sources, the PoseSet layout, preprocessing and the HDF5 cache."""
