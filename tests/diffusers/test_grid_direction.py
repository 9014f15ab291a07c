"""Every family's grid, as the samplers see it, runs from noise to clean; a folder whose does not
is refused at load with one line naming the setting (issue 21, section 5)."""

from __future__ import annotations

import pytest
from diffusers_tiny import BUILDERS, MORE_BUILDERS, TINY_SETTINGS, VARIANTS, load, tiny_pipe

from syncos.backends.diffusers import load_diffusers_backend
from syncos.errors import UserError


@pytest.mark.parametrize("family", [*BUILDERS, *MORE_BUILDERS, *VARIANTS])
def test_every_family_s_grid_runs_from_noise_to_clean(family):
    """The noise-to-signal ratio sigma / alpha falls at every step, from pure noise to clean."""
    g = load(family).schedule.grid(8)
    assert bool((g.sigma_next * g.alpha < g.sigma * g.alpha_next).all()), family
    assert (
        float(g.sigma[0]) > 0.9 * float((g.alpha[0] ** 2 + g.sigma[0] ** 2).sqrt())
        and float(g.sigma_next[-1]) < 0.05
    )


def test_a_grid_from_clean_to_noise_is_refused():
    """Wan's flow network with a scheduler that inverts sigmas (Mochi's convention): the grid
    would run from sigma 0 to 1. Fails on the old code, which loaded it and ran."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    pipe = tiny_pipe("wan")
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, invert_sigmas=True)
    with pytest.raises(UserError, match=r"^wan: .*invert_sigmas=True gives a grid from clean to noise") as e:
        load_diffusers_backend(None, pipe=pipe, **TINY_SETTINGS["wan"])
    assert "\n" not in str(e.value)
