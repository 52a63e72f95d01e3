"""What the loss node runs, named once for the engine and settings (a module of its own so that
reading settings does not import torch).

`learned`: a learner, as in MPLP; `gradient`: no learner, the element loss's exact derivative in
every message channel (`protocol/gradient_seed.py`).
"""

LOSS_RULES = ("learned", "gradient")
