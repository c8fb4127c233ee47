"""Lightning modules, the image DataModule and training callbacks."""

from crdr.lit.data import ImageDataModule
from crdr.lit.gan import GanModule
from crdr.lit.rate_distortion import RateDistortionModule

__all__ = ["GanModule", "ImageDataModule", "RateDistortionModule"]
