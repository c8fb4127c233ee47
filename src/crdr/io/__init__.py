"""The edges of the program: files written atomically and paths expanded (files.py), images read and written
(images.py), and the errors that bad input raises (errors.py). Torch-free but for images.py."""
