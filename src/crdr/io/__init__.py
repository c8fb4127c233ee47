"""The program's edges: files written atomically and paths expanded (files.py), images read and written
(images.py), whether the W&B service answers (wandb_mode.py), and the errors that bad input raises (errors.py).
Torch-free but for images.py."""
