"""The spec layer: the model (`Spec` and its parts) and the YAML loader."""

from recur.spec.load import load_spec
from recur.spec.model import Declared, OutputSpec, Spec, ValueSpec

__all__ = ["Declared", "OutputSpec", "Spec", "ValueSpec", "load_spec"]
