"""Task families (sinusoid regression, image classification) and the IDX reader."""

from lbpbench.tasks.base import NetworkSpec, TaskBatch, TaskFamily
from lbpbench.tasks.mnist import ImageClassificationFamily
from lbpbench.tasks.sinusoid import SinusoidFamily

__all__ = ["ImageClassificationFamily", "NetworkSpec", "SinusoidFamily", "TaskBatch", "TaskFamily"]
