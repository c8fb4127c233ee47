"""The CRDR generator and its parts."""

from crdr.models.context_model import ChannelContextModel, SliceTransform
from crdr.models.entropy_models import StraightThroughEntropyBottleneck, StraightThroughGaussianConditional
from crdr.models.generator import CrdrGenerator, GeneratorOutput
from crdr.models.hyperprior import (
    ChengHyperAnalysis,
    ChengHyperSynthesis,
    MinnenHyperAnalysis,
    MinnenHyperSynthesis,
)
from crdr.models.memory_format import use_channels_last
from crdr.models.transforms import AnalysisTransform, SynthesisTransform

__all__ = [
    "AnalysisTransform",
    "ChannelContextModel",
    "ChengHyperAnalysis",
    "ChengHyperSynthesis",
    "CrdrGenerator",
    "GeneratorOutput",
    "MinnenHyperAnalysis",
    "MinnenHyperSynthesis",
    "SliceTransform",
    "StraightThroughEntropyBottleneck",
    "StraightThroughGaussianConditional",
    "SynthesisTransform",
    "use_channels_last",
]
