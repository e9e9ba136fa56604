"""The search space of a sweep: which values of which hyper-parameters each method is tried with.

A space maps a parameter name to the finite list of values to try. Every method searches the
training settings ``lr`` and ``wd``; the other parameters are combiner options and are searched
only for the methods that take them (:data:`METHOD_PARAMS`), so a BPR-only or EW study does not
waste trials on ``alpha`` or ``tau``. ``pmtrec-nofocus`` fixes alpha at 1 and ``pmtrec-nobalance``
fixes tau at 1 (the ablations' definitions), so each searches only the other one.

Sources, merged in this order (later wins per parameter): the paper's grid (``paper``, section
4.1.4 of the paper), a JSON file (``{"lr": [0.01, 0.005], "tau": [1e-2, 1e-4]}``, optionally
``"methods": {"cagrad": {"calpha": [0.2, 0.5]}}`` for per-method values), and command-line lists.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

from ..errors import PmtError

#: The paper's grid (section 4.1.4): lr, weight decay, task-focusing base alpha 1.0..1.2 step 0.02,
#: and the magnitude-balancing temperature tau.
PAPER_SPACE: dict[str, list] = {
    "lr": [0.1, 0.05, 0.01, 0.005, 0.001],
    "wd": [1e-2, 1e-4, 1e-6, 1e-8],
    "alpha": [round(1.0 + 0.02 * i, 2) for i in range(11)],
    "tau": [10.0, 1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6],
}

#: Training settings every method searches (applied to the FitConfig, not the combiner).
TRAINING_PARAMS = ("lr", "wd")

#: Combiner options that a sweep may search, per method (constructor keywords of the combiner).
METHOD_PARAMS: dict[str, tuple[str, ...]] = {
    "bpr-only": (),  # not a combiner: the main task alone (tasks = bpr), see BPR_ONLY
    "ew": (),
    "rlw": ("per",),
    "graddrop": ("leak",),
    "pcgrad": (),
    "gradvac": ("beta",),
    "cagrad": ("calpha", "rescale"),
    "aligned-mtl": (),
    "nash-mtl": ("max_norm", "update_every"),
    "pmtrec": ("alpha", "tau", "drop_absent"),
    "pmtrec-nofocus": ("tau", "drop_absent"),
    "pmtrec-nobalance": ("alpha", "drop_absent"),
}

#: The pseudo-method "BPR only": the main task without auxiliary tasks (EW over one task), so
#: Table 2's single-task row is searched and re-run like the methods.
BPR_ONLY = "bpr-only"

_ALLOWED_TYPES = (bool, int, float, str)


def _clean_values(name: str, values, where: str) -> list:
    if not isinstance(values, (list, tuple)) or not values:
        raise PmtError(f"{where}: parameter {name!r} needs a non-empty list of values, got {values!r}")
    out = []
    for v in values:
        if not isinstance(v, _ALLOWED_TYPES) or (isinstance(v, float) and not math.isfinite(v)):
            raise PmtError(f"{where}: parameter {name!r}: value {v!r} is not a finite number, bool or string")
        if v not in out:
            out.append(v)
    return out


def _check_name(name: str, where: str) -> None:
    known = set(TRAINING_PARAMS).union(*METHOD_PARAMS.values())
    if name not in known:
        raise PmtError(f"{where}: unknown parameter {name!r}; searchable: {', '.join(sorted(known))}")


def parse_list(text: str, name: str) -> list:
    """``"0.1,0.01"`` -> ``[0.1, 0.01]`` (ints, floats, true/false, or strings)."""
    out = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        low = part.lower()
        if low in ("true", "false"):
            out.append(low == "true")
            continue
        for cast in (int, float):
            try:
                out.append(cast(part))
                break
            except ValueError:
                pass
        else:
            out.append(part)
    if not out:
        raise PmtError(f"--{name.replace('_', '-')}: no values in {text!r}")
    return _clean_values(name, out, f"--{name.replace('_', '-')}")


class SearchSpace:
    """Values to try per parameter, shared by all methods, plus per-method overrides."""

    def __init__(self, common: dict[str, list] | None = None, per_method: dict[str, dict[str, list]] | None = None):
        self.common: dict[str, list] = {}
        self.per_method: dict[str, dict[str, list]] = {}
        for k, v in (common or {}).items():
            self.set(k, v)
        for m, d in (per_method or {}).items():
            for k, v in d.items():
                self.set(k, v, method=m)

    def set(self, name: str, values, method: str | None = None, where: str = "search space") -> None:
        _check_name(name, where)
        vals = _clean_values(name, values, where)
        if method is None:
            self.common[name] = vals
        else:
            if method not in METHOD_PARAMS:
                raise PmtError(f"{where}: unknown method {method!r}")
            if name not in TRAINING_PARAMS and name not in METHOD_PARAMS[method]:
                raise PmtError(f"{where}: method {method!r} has no parameter {name!r} "
                               f"(it takes {', '.join(TRAINING_PARAMS + METHOD_PARAMS[method])})")
            self.per_method.setdefault(method, {})[name] = vals

    def for_method(self, method: str) -> dict[str, list]:
        """The parameters meaningful for ``method`` and their values (sorted by name)."""
        if method not in METHOD_PARAMS:
            raise PmtError(f"unknown method {method!r}; choose from {', '.join(METHOD_PARAMS)}")
        allowed = TRAINING_PARAMS + METHOD_PARAMS[method]
        out = {k: list(v) for k, v in self.common.items() if k in allowed}
        out.update({k: list(v) for k, v in self.per_method.get(method, {}).items()})
        return dict(sorted(out.items()))

    def grid_size(self, method: str) -> int:
        return math.prod(len(v) for v in self.for_method(method).values())

    def grid(self, method: str) -> list[dict]:
        """Every combination (the exhaustive grid) of ``method``'s parameters."""
        sp = self.for_method(method)
        return [dict(zip(sp, combo)) for combo in itertools.product(*sp.values())]

    def to_dict(self) -> dict:
        return {"common": self.common, "per_method": self.per_method}

    @classmethod
    def from_dict(cls, d: dict) -> "SearchSpace":
        return cls(d.get("common"), d.get("per_method"))


def load_space_file(path) -> SearchSpace:
    """A JSON (or, when PyYAML is installed, YAML) file: ``{param: [values]}`` and optionally
    ``"methods": {method: {param: [values]}}``."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise PmtError(f"{p}: cannot read the search space ({exc.strerror})") from None
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml  # optional: only if it is already installed
        except ImportError:
            raise PmtError(f"{p}: YAML needs PyYAML (not a pmtnumba dependency); write the space as JSON") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PmtError(f"{p}: not valid YAML ({exc})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PmtError(f"{p}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise PmtError(f"{p}: the search space must be an object of parameter -> list of values")
    space = SearchSpace()
    for k, v in data.items():
        if k == "methods":
            if not isinstance(v, dict):
                raise PmtError(f"{p}: 'methods' must map a method to its parameters")
            for m, params in v.items():
                if not isinstance(params, dict):
                    raise PmtError(f"{p}: methods.{m} must map a parameter to a list of values")
                for name, vals in params.items():
                    space.set(name, vals, method=m, where=str(p))
        else:
            space.set(k, v, where=str(p))
    return space


def build_space(base: str | None = None, overrides: dict[str, str] | None = None) -> SearchSpace:
    """``base``: ``"paper"``, a JSON/YAML file, or None (empty); ``overrides``: ``{param: "v1,v2"}``
    from the command line, replacing the base's values of that parameter for every method."""
    if base is None or base == "":
        space = SearchSpace()
    elif base == "paper":
        space = SearchSpace(PAPER_SPACE)
    else:
        space = load_space_file(base)
    for name, text in (overrides or {}).items():
        if text is None:
            continue
        space.set(name, parse_list(text, name), where=f"--{name.replace('_', '-')}")
    return space
