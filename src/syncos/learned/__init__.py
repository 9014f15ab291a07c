"""toyworld-learned: a small Wan text-to-video model trained on clips from toyworld's generative prior.

It is a second judge beside toyworld's exact posterior: a network with function-approximation
error and inductive biases, loaded through the same diffusers code path a Wan user runs
(docs/learned.md). Run time needs only :mod:`.pipeline`; :mod:`.data` and :mod:`.train` train it.
"""
