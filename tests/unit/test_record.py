"""Record: the build and push path's value classes behave as the frozen
dataclasses they replace, and that path imports neither dataclasses
(with inspect) nor typing, pathlib, datetime or socket."""

from __future__ import annotations

import copy
import dataclasses
import os
import pathlib
import pickle
import subprocess
import sys
import sysconfig

import pytest

from jenkinsctl import record
from jenkinsctl.config import Config, SecretRef, StepRefusedFileRef, load_config
from jenkinsctl.record import Record, field


class Rec(Record):
    """A record with each kind of field."""

    name: str
    count: int = 0
    labels: dict = field(default_factory=dict)
    note: str | None = field(default=None, compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class Dc:
    """The same fields as a dataclass."""

    name: str
    count: int = 0
    labels: dict = dataclasses.field(default_factory=dict)
    note: str | None = dataclasses.field(default=None, compare=False, repr=False)


class Sub(Rec):
    """A subclass without fields of its own, as StepRefusedFileRef."""


class Mutable(Record, frozen=False):
    """A record whose fields may change, as ShipResult."""

    done: bool = False


def _same(make):
    """make(cls) on the record and on the dataclass: results and exceptions
    (types, and messages with the class names aligned) agree."""
    out = []
    for cls in (Rec, Dc):
        try:
            out.append(("ok", make(cls)))
        except Exception as exc:  # noqa: BLE001 - compared below
            out.append((type(exc), str(exc).replace(cls.__qualname__, "CLS")))
    return out[0], out[1]


@pytest.mark.parametrize("make", [
    lambda c: repr(c("a", 2, {"k": 1}, "n")).replace(c.__qualname__, "CLS"),
    lambda c: c("a") == c("a", 0, {}, "other note"),
    lambda c: c("a") == c("b"),
    lambda c: hash(c("a", 1)) == hash(c("a", 1, note="x")),
    lambda c: c(name="a", labels={"x": "y"}).labels,
    lambda c: c("a").labels is not c("a").labels,
    lambda c: c.__match_args__,
    lambda c: c.count,
    lambda c: hasattr(c, "labels"),
    lambda c: [f.name for f in dataclasses.fields(c)],
    lambda c: [(f.default, f.default_factory, f.repr, f.compare) for f in dataclasses.fields(c)],
    lambda c: dataclasses.asdict(c("a", 3, {"l": [1, {"m": 2}]})),
    lambda c: dataclasses.replace(c("a", 3), count=4) == c("a", 4),
    lambda c: dataclasses.is_dataclass(c) and dataclasses.is_dataclass(c("a")),
    lambda c: copy.deepcopy(c("a", 1, {"x": [1]})) == c("a", 1, {"x": [1]}),
    lambda c: pickle.loads(pickle.dumps(c("a", 1))) == c("a", 1),
    lambda c: c(),
    lambda c: c("a", 1, {}, None, "extra"),
    lambda c: c("a", name="b"),
    lambda c: c("a", colour="red"),
    lambda c: dataclasses.replace(c("a"), colour="red"),
], ids=range(21))
def test_a_record_behaves_as_the_frozen_dataclass_it_replaces(make):
    got, want = _same(make)
    if got[0] is TypeError:  # the argument errors say the same, in their own words
        assert want[0] is TypeError and got[1].split("(")[0] == want[1].split("(")[0]
        return
    assert got == want


@pytest.mark.parametrize("cls", [Rec, Dc])
def test_assigning_or_deleting_a_field_raises_frozen_instance_error(cls):
    obj = cls("a")
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'count'"):
        obj.count = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        obj.other = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        del obj.name


def test_subclasses_and_mutable_records():
    assert Sub("a") != Rec("a") and Sub("a") == Sub("a") and repr(Sub("a")) == "Sub(name='a', count=0, labels={})"
    assert dataclasses.replace(Sub("a"), count=2) == Sub("a", 2)
    m = Mutable()
    m.done = True
    assert m.done and m == Mutable(True) and Mutable.__hash__ is None  # unhashable, as a dataclass with eq
    ref = StepRefusedFileRef(file="/etc/x")
    assert ref != SecretRef(file="/etc/x") and ref.describe() == {"file": "/etc/x"}


def test_field_order_and_default_rules_are_the_dataclass_ones():
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):
        class Bad(Record):
            """a field without a default after one with it"""

            a: int = 1
            b: int
    with pytest.raises(ValueError, match="both default and default_factory"):
        field(default=1, default_factory=int)


def test_record_helpers_match_dataclasses_functions():
    obj = Rec("a", 1, {"x": (1, Rec("b"))})
    assert record.asdict(obj) == dataclasses.asdict(obj)
    assert record.replace(obj, count=5) == dataclasses.replace(obj, count=5)
    cfg = load_config(None, {})
    assert isinstance(cfg, Config) and dataclasses.replace(cfg, project="p").project == "p"
    assert record.asdict(cfg.build) == dataclasses.asdict(cfg.build)


_IMPORTS = """
import sys
root, ndeps = sys.argv[1], int(sys.argv[2])
sys.path[:0] = [root]
sys.path.extend(sys.argv[3:3 + ndeps])
import jenkinsctl.cli
from jenkinsctl.commands import build, push
from jenkinsctl import ship
from jenkinsctl.config import load_config
conf = load_config(None, {"JENKINSCTL_REGISTRY_URL": "127.0.0.1:5000"})
plan = ship.plan_build(image="127.0.0.1:5000/team/app", context=sys.argv[3 + ndeps], explicit_tags=["1"],
                       environ={}, build_args={"A": "1"}, user_labels={"l": "v"})
print(plan.spec, ship.BuildResult("sha256:1", plan.spec.refs, "buildkit", 1, 1, 0.1).to_dict())
print("MODULES " + " ".join(sorted(sys.modules)))
"""


def test_the_build_and_push_path_imports_no_dataclasses_typing_pathlib_datetime_or_socket(tmp_path):
    """As a wheel install runs it (-S: no site, no editable finder): the
    command modules, the config on its defaults and a checked build plan."""
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    root = str(pathlib.Path(record.__file__).resolve().parent.parent)
    deps = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    out = subprocess.run([sys.executable, "-S", "-c", _IMPORTS, root, str(len(deps)), *deps, str(tmp_path)],
                         capture_output=True, text=True, timeout=60, cwd=str(tmp_path),
                         env={k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "JENKINSCTL_"))})
    assert out.returncode == 0, out.stderr
    mods = set(out.stdout.rpartition("MODULES ")[2].split())
    assert "jenkinsctl.config" in mods and "jenkinsctl.ship" in mods  # the check looked at the right run
    heavy = {"dataclasses", "inspect", "typing", "pathlib", "datetime", "copy", "urllib", "socket", "docker", "yaml",
             "jsonschema", "logging"}
    assert not heavy & mods, sorted(heavy & mods)
