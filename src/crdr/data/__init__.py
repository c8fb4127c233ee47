"""Data: the paper's datasets (manifests, verified resumable downloads, extraction: ``crdr data``), crdr-tiny's
training photographs, tar shards, and the training stream (crops of image folders or shards, the resumable
sampler). Import from the module that does the job; only crops, sampling and shards import torch.
"""
