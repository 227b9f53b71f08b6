"""A stand-in for the few torchvision pieces diffusers' train_dreambooth.py imports.

torchvision from PyPI does not import beside the CPU torch build this project pins, and the
reference script only needs its transforms to turn a 64 px picture into a tensor.
bench/finetune.py puts this folder on the reference run's path when torchvision is missing.
"""
