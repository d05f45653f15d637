"""Aggregation methods of a job (``--algorithm``): their names, arguments and what each asks of the server and sites.

- ``fedavg``: FedAvg (McMahan et al. 2017), the sites' weights averaged by their step counts.
- ``fedprox``: FedAvg whose sites add FLARE's ``PTFedProxLoss``, ``mu / 2 * ||w - w_global||^2``, to every local step
  (Li et al. 2020).
- ``fedopt``: the averaged weight change applied to the global model by a server-side optimiser, FLARE's
  ``PTFedOptModelShareableGenerator`` (Reddi et al. 2021; SGD with momentum by default, FLARE's CIFAR-10 setting).
- ``scaffold``: control variates correct each site's drift (Karimireddy et al. 2020): FLARE's
  ``ScatterAndGatherScaffold`` on the server, its ``PTScaffoldHelper`` at the sites.
- ``ditto``: each site also trains a personal model held near the global one by a proximal term (Li et al. 2021),
  FLARE's ``PTDittoHelper``; the personal models are the sites' local models of the cross-site evaluation.
"""

from typing import Any, Dict, Mapping, Optional

FEDAVG, FEDPROX, FEDOPT, SCAFFOLD, DITTO = "fedavg", "fedprox", "fedopt", "scaffold", "ditto"
ALGORITHM_DEFAULTS: Dict[str, Dict[str, Any]] = {
    FEDAVG: {},
    FEDPROX: {"mu": 0.01},
    FEDOPT: {"optimizer": "torch.optim.SGD", "lr": 1.0, "momentum": 0.6},
    SCAFFOLD: {},
    DITTO: {"lambda": 0.1},
}
"""Arguments of each method that a job's ``algorithm_args`` override. fedprox ``mu``: the proximal weight; fedopt: the
server optimiser (a torch optimiser's path), its learning rate and momentum; ditto ``lambda``: the proximal weight of
the personal model."""
ALGORITHMS = tuple(ALGORITHM_DEFAULTS)
SENDS_WEIGHT_DIFF = frozenset({FEDOPT, SCAFFOLD})
"""Methods whose sites send the change of the weights in a round: the server's optimiser and SCAFFOLD's update work on
it."""
PERSONALISED = frozenset({DITTO})
"""Methods whose sites keep a model of their own besides the global one."""


def algorithm_arguments(name: str, args: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The method's arguments: its defaults with ``args`` over them; refuses unknown methods and arguments."""
    if name not in ALGORITHM_DEFAULTS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {name!r}")
    args = dict(args or {})
    unknown = sorted(set(args) - set(ALGORITHM_DEFAULTS[name]))
    if unknown:
        known = sorted(ALGORITHM_DEFAULTS[name]) or "none"
        raise ValueError(f"unknown arguments {unknown} of algorithm {name}; known: {known}")
    values = {**ALGORITHM_DEFAULTS[name], **args}
    for key in ("mu", "lambda", "lr", "momentum"):
        if key in values and (not isinstance(values[key], (int, float)) or values[key] < 0):
            raise ValueError(f"algorithm {name}: {key} must be a number of at least 0, got {values[key]!r}")
    return values
