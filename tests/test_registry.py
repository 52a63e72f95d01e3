"""The plugin registry through its real loading paths (no mocks): built-ins, entry points, folders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lbpbench
from lbpbench.contracts import KIND_PROTOCOLS
from lbpbench.registry import (
    KINDS,
    DuplicateComponentError,
    PluginContractError,
    PluginError,
    PluginLoadWarning,
    build_registry,
    get_registry,
)

REPO = Path(__file__).resolve().parents[1]
SIGNSGD_SRC = REPO / "plugins" / "lbpbench-signsgd"

pytestmark = pytest.mark.usefixtures("isolated_plugins")

# The built-in component names promised by docs/ARCHITECTURE.md.
BUILTINS = {
    "node_type": {"dense", "relu", "sigmoid", "tanh", "step", "softmax", "l2", "cross_entropy"},
    "aggregator": {"mean", "sum", "rnn", "max", "attention"},
    "learner": {"stateless", "stateful", "backprop"},
    "task": {"sinusoid-5x10", "sinusoid-2x10", "mnist-20x8", "mnist-20x8-step", "mnist-784-100"},
    "baseline": {"sgd", "adam", "maml"},
}


def plugin_file(folder: Path, stem: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.py"
    path.write_text("from lbpbench import hookimpl\n\n" + textwrap.dedent(body))
    return path


def aggregator_plugin(folder: Path, stem: str, *names: str) -> Path:
    calls = "".join(f"    register({n!r}, make, 'aggregator {n}')\n" for n in names)
    return plugin_file(
        folder,
        stem,
        "class Agg:\n"
        "    def __init__(self, message_size, **opts):\n"
        "        self.made_with = ('agg', message_size, opts)\n\n"
        "    def aggregate(self, edges, dim):\n"
        "        return edges.sum(dim)\n\n"
        "def make(message_size, **opts):\n    return Agg(message_size, **opts)\n\n"
        "@hookimpl\ndef lbpbench_register_aggregators(register):\n" + calls,
    )


# -- built-ins ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_builtins_present(kind):
    reg = get_registry(refresh=True)
    missing = BUILTINS[kind] - set(reg.names(kind))
    assert not missing, f"built-in {kind}(s) not registered: {sorted(missing)}; problems: {reg.problems}"
    for name in BUILTINS[kind]:
        comp = reg.get(kind, name)
        assert comp.plugin.startswith("lbpbench.builtins."), comp
        assert comp.version == lbpbench.__version__
        assert comp.kind == kind and comp.name == name and callable(comp.factory)


def test_builtins_load_without_problems():
    reg = get_registry(refresh=True)
    assert not [p for p in reg.problems if "lbpbench.builtins" in p]
    assert all(p.builtin for p in reg.plugins if p.name.startswith("lbpbench.builtins."))


# -- the Registry API -------------------------------------------------------------------------------


def test_get_create_names_all(tmp_path):
    aggregator_plugin(tmp_path / "p", "zz_aggs", "zeta", "alpha")
    reg = get_registry(plugin_dirs=[tmp_path / "p"], refresh=True)
    assert {"alpha", "zeta"} <= set(reg.names("aggregator"))
    assert reg.names("aggregator") == sorted(reg.names("aggregator"))
    comp = reg.get("aggregator", "zeta")
    assert (comp.kind, comp.name, comp.plugin) == ("aggregator", "zeta", "zz_aggs")
    assert comp.description == "aggregator zeta"
    assert comp.source == str((tmp_path / "p" / "zz_aggs.py").resolve())
    assert reg.create("aggregator", "zeta", message_size=4, x=1).made_with == ("agg", 4, {"x": 1})
    assert comp in reg.all() and comp in reg.all("aggregator")
    assert [c.kind for c in reg.all()] == sorted((c.kind for c in reg.all()), key=KINDS.index)
    assert ("aggregator", "zeta") in reg


def test_unknown_name_and_kind():
    reg = get_registry(refresh=True)
    with pytest.raises(ValueError) as err:
        reg.get("aggregator", "foo")
    registered = ", ".join(reg.names("aggregator")) or "(none)"
    assert str(err.value) == f"unknown aggregator 'foo'; registered: {registered}"
    with pytest.raises(ValueError, match="unknown aggregator 'foo'"):
        reg.create("aggregator", "foo", message_size=8)
    with pytest.raises(ValueError, match=r"unknown component kind 'widget'; kinds: node_type, aggregator"):
        reg.names("widget")
    with pytest.raises(ValueError, match="unknown component kind"):
        reg.get("widget", "x")


def test_description_defaults_to_first_docstring_line(tmp_path):
    plugin_file(
        tmp_path,
        "docs",
        '''
        class Adder:
            """Adds things.

            More detail here.
            """

        def plain(**opts):
            pass

        @hookimpl
        def lbpbench_register_learners(register):
            register("adder", Adder)
            register("plain", plain)
            register("explicit", Adder, description="given explicitly")
        ''',
    )
    reg = get_registry(plugin_dirs=[tmp_path], refresh=True)
    assert reg.get("learner", "adder").description == "Adds things."
    assert reg.get("learner", "plain").description == ""
    assert reg.get("learner", "explicit").description == "given explicitly"


def test_cached_until_refresh(tmp_path):
    aggregator_plugin(tmp_path, "cached", "c1")
    first = get_registry(plugin_dirs=[tmp_path])
    assert get_registry(plugin_dirs=[tmp_path]) is first
    aggregator_plugin(tmp_path, "cached", "c1", "c2")
    assert "c2" not in get_registry(plugin_dirs=[tmp_path]).names("aggregator")
    fresh = get_registry(plugin_dirs=[tmp_path], refresh=True)
    assert fresh is not first and "c2" in fresh.names("aggregator")
    assert get_registry(plugin_dirs=[tmp_path]) is fresh


# -- duplicates -----------------------------------------------------------------------------------


def test_duplicate_name_names_both_origins(tmp_path):
    aggregator_plugin(tmp_path, "first_plugin", "dup")
    aggregator_plugin(tmp_path, "second_plugin", "dup")
    for build in (lambda: get_registry(plugin_dirs=[tmp_path], refresh=True),
                  lambda: build_registry([tmp_path])):
        with pytest.raises(DuplicateComponentError) as err:
            build()
        msg = str(err.value)
        assert "aggregator 'dup'" in msg and "first_plugin" in msg and "second_plugin" in msg
        assert str(tmp_path / "first_plugin.py") in msg and str(tmp_path / "second_plugin.py") in msg
        assert isinstance(err.value, ValueError)
        assert [(c.kind, c.name) for c in err.value.conflicts] == [("aggregator", "dup")]
    # the cached registry keeps refusing, not only the first call
    with pytest.raises(DuplicateComponentError):
        get_registry(plugin_dirs=[tmp_path])


def test_conflicts_are_recorded_for_listing_and_refused_when_used(tmp_path):
    aggregator_plugin(tmp_path, "first_plugin", "dup", "only-first")
    aggregator_plugin(tmp_path, "second_plugin", "dup")
    reg = get_registry(plugin_dirs=[tmp_path], refresh=True, allow_conflicts=True)
    (conflict,) = reg.conflicts
    assert (conflict.kind, conflict.name) == ("aggregator", "dup")
    assert [c.plugin for c in conflict.components] == ["first_plugin", "second_plugin"]
    assert reg.conflict("aggregator", "dup") is conflict and reg.conflict("aggregator", "mean") is None
    # both plugins loaded; their other components are fine
    assert {"first_plugin", "second_plugin"} <= {p.name for p in reg.plugins}
    assert reg.create("aggregator", "only-first", message_size=2).made_with[1] == 2
    uses = (lambda: reg.get("aggregator", "dup"), lambda: reg.create("aggregator", "dup", message_size=2))
    for use in uses:
        with pytest.raises(DuplicateComponentError, match="aggregator 'dup'.*first_plugin.*second_plugin"):
            use()
    # without allow_conflicts the same cached registry refuses as a whole
    with pytest.raises(DuplicateComponentError):
        get_registry(plugin_dirs=[tmp_path])


def test_three_way_conflict_names_every_origin(tmp_path):
    for stem in ("p_a", "p_b", "p_c"):
        aggregator_plugin(tmp_path, stem, "trio")
    reg = get_registry(plugin_dirs=[tmp_path], refresh=True, allow_conflicts=True)
    (conflict,) = reg.conflicts
    assert [c.plugin for c in conflict.components] == ["p_a", "p_b", "p_c"]
    assert "by plugin 'p_a'" in conflict.message() and ", by plugin 'p_b'" in conflict.message()
    assert " and by plugin 'p_c'" in conflict.message()


def test_duplicate_of_a_builtin(tmp_path):
    aggregator_plugin(tmp_path, "shadow", "mean")
    both = r"aggregator 'mean'.*lbpbench\.builtins\.protocol.*shadow"
    with pytest.raises(DuplicateComponentError, match=both):
        get_registry(plugin_dirs=[tmp_path], refresh=True)


def test_duplicate_within_one_plugin(tmp_path):
    aggregator_plugin(tmp_path, "twice", "same", "same")
    with pytest.raises(ValueError, match="duplicate aggregator 'same'.*twice"):
        get_registry(plugin_dirs=[tmp_path], refresh=True)
    reg = get_registry(plugin_dirs=[tmp_path], allow_conflicts=True)
    assert "registered twice by plugin 'twice'" in reg.conflicts[0].message()


def test_rejected_plugin_leaves_no_conflict(tmp_path):
    aggregator_plugin(tmp_path, "a_first", "taken")
    plugin_file(
        tmp_path,
        "b_crashes",
        "@hookimpl\ndef lbpbench_register_aggregators(register):\n"
        "    register('taken', dict)\n    raise RuntimeError('boom')\n",
    )
    with pytest.warns(PluginLoadWarning, match="boom"):
        reg = get_registry(plugin_dirs=[tmp_path], refresh=True)
    assert not reg.conflicts and reg.get("aggregator", "taken").plugin == "a_first"


def test_same_name_in_different_kinds_is_fine(tmp_path):
    plugin_file(
        tmp_path,
        "kinds",
        """
        @hookimpl
        def lbpbench_register_aggregators(register):
            register("shared-name", dict)

        @hookimpl
        def lbpbench_register_learners(register):
            register("shared-name", dict)
        """,
    )
    reg = get_registry(plugin_dirs=[tmp_path], refresh=True)
    assert "shared-name" in reg.names("aggregator") and "shared-name" in reg.names("learner")


# -- create() checks every product against its kind's Protocol (lbpbench.contracts) -------------------

# Options each built-in factory is called with (as build_network / the harness call them).
CREATE_OPTIONS = {
    "node_type": lambda name: (
        dict(name="dense2", in_size=3, out_size=4) if name == "dense" else dict(name="node1", size=4)
    ),
    "aggregator": lambda name: dict(message_size=3),
    "learner": lambda name: dict(message_size=1 if name == "backprop" else 3, hidden_size=2),
    "task": lambda name: dict(data_dir=None),
    "baseline": lambda name: {},
}


@pytest.mark.parametrize("kind", KINDS)
def test_create_every_builtin_of_every_kind(kind):
    """create() works for every kind (node types take name=, which create() must pass through)."""
    reg = get_registry(refresh=True)
    for name in sorted(BUILTINS[kind]):
        obj = reg.create(kind, name, **CREATE_OPTIONS[kind](name))
        assert isinstance(obj, KIND_PROTOCOLS[kind]), (kind, name)
        assert reg.get(kind, name).create(**CREATE_OPTIONS[kind](name)) is not obj  # a fresh product


def test_create_node_type_passes_name_through():
    reg = get_registry(refresh=True)
    node = reg.create("node_type", "relu", name="act1", size=5)
    assert (node.name, node.size, node.role) == ("act1", 5, "activation")
    dense = reg.create("node_type", "dense", name="dense2", in_size=3, out_size=4)
    assert dense.param_shapes() == {"W": (3, 4), "b": (4,)}


def test_plugin_object_missing_a_method_names_plugin_and_method(tmp_path):
    path = plugin_file(
        tmp_path,
        "half_baseline",
        """
        class HalfBaseline:
            name = "half"
            lrs = (0.1,)
            # no step(params, grads, state, lr)

        @hookimpl
        def lbpbench_register_baselines(register):
            register("half", HalfBaseline)
        """,
    )
    reg = get_registry(plugin_dirs=[tmp_path], refresh=True)  # loading never calls the factory
    with pytest.raises(PluginContractError) as err:
        reg.create("baseline", "half")
    msg = str(err.value)
    assert isinstance(err.value, TypeError)
    assert "baseline 'half'" in msg and "plugin 'half_baseline'" in msg and str(path) in msg
    assert "missing method step(params, grads, state, lr, /)" in msg
    assert "lbpbench.contracts.Baseline" in msg
    assert (err.value.kind, err.value.name, err.value.plugin) == ("baseline", "half", "half_baseline")


def test_plugin_method_with_the_wrong_signature(tmp_path):
    plugin_file(
        tmp_path,
        "axis_agg",
        """
        class AxisAggregator:
            def __init__(self, message_size, **options):
                pass

            def aggregate(self, edges, axis):  # lbpbench passes dim=
                return edges.mean(axis)

        @hookimpl
        def lbpbench_register_aggregators(register):
            register("axis", AxisAggregator)
        """,
    )
    reg = get_registry(plugin_dirs=[tmp_path], refresh=True)
    with pytest.raises(PluginContractError) as err:
        reg.create("aggregator", "axis", message_size=2)
    msg = str(err.value)
    assert "aggregator 'axis' from plugin 'axis_agg'" in msg
    assert "aggregate(edges, axis) cannot be called as lbpbench calls it, aggregate(edges, dim=...)" in msg


def test_old_style_learner_gets_a_message_saying_what_changed(tmp_path):
    plugin_file(
        tmp_path,
        "old_learner",
        """
        import torch

        class Core(torch.nn.Module):
            def forward(self, pieces, carry, need_message):
                return None, None, None

        @hookimpl
        def lbpbench_register_learners(register):
            register("old", lambda **options: Core())
        """,
    )
    reg = get_registry(plugin_dirs=[tmp_path], refresh=True)
    with pytest.raises(PluginContractError) as err:
        reg.create("learner", "old", message_size=2)
    msg = str(err.value)
    assert "plugin 'old_learner'" in msg and "missing method make_core(slot, /)" in msg
    assert "returns a LearnerFamily" in msg and "earlier hook docs" in msg


# -- broken plugins ---------------------------------------------------------------------------------

BROKEN = {
    "syntax_error": "def oops(:\n",
    "import_error": "import lbpbench_no_such_module_xyz\n",
    "wrong_argname": "@hookimpl\ndef lbpbench_register_aggregators(reg):\n    reg('never', dict)\n",
    "misspelled_hook": (
        "@hookimpl\ndef lbpbench_register_aggregator(register):\n    register('never', dict)\n\n"
        "@hookimpl\ndef lbpbench_register_learners(register):\n    register('never-either', dict)\n"
    ),
    "crashing_hook": "@hookimpl\ndef lbpbench_register_tasks(register):\n    register('never', dict)\n"
    "    raise RuntimeError('boom')\n",
}
REASONS = {
    "syntax_error": "SyntaxError",
    "import_error": "lbpbench_no_such_module_xyz",
    "wrong_argname": "reg",
    "misspelled_hook": "lbpbench_register_aggregator",
    "crashing_hook": "boom",
}


def test_broken_plugins_are_isolated(tmp_path):
    aggregator_plugin(tmp_path, "a_good", "good-before")
    aggregator_plugin(tmp_path, "z_good", "good-after")
    for stem, body in BROKEN.items():
        plugin_file(tmp_path, stem, body)
    with pytest.warns(PluginLoadWarning) as record:
        reg = get_registry(plugin_dirs=[tmp_path], refresh=True)
    messages = [str(w.message) for w in record if issubclass(w.category, PluginLoadWarning)]
    for stem, reason in REASONS.items():
        hits = [m for m in messages if f"'{stem}'" in m]
        assert len(hits) == 1, (stem, messages)
        assert reason in hits[0], (stem, hits[0])
    assert len(reg.problems) == len(BROKEN)
    assert {"good-before", "good-after"} <= set(reg.names("aggregator"))
    every_name = {c.name for c in reg.all()}
    assert not {"never", "never-either"} & every_name  # a rejected plugin registers nothing
    loaded = {p.name for p in reg.plugins}
    assert {"a_good", "z_good"} <= loaded and not set(BROKEN) & loaded


@pytest.mark.parametrize("stem", sorted(BROKEN))
def test_strict_mode_raises(tmp_path, monkeypatch, stem):
    aggregator_plugin(tmp_path, "a_good", "good")
    plugin_file(tmp_path, stem, BROKEN[stem])
    monkeypatch.setenv("LBPBENCH_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=f"'{stem}'.*{REASONS[stem]}"):
        get_registry(plugin_dirs=[tmp_path], refresh=True)


def test_misspelled_hook_is_caught(tmp_path):
    plugin_file(tmp_path, "typo", "@hookimpl\ndef lbpbench_register_node_type(register):\n    pass\n")
    with pytest.warns(PluginLoadWarning, match=r"'typo'.*unknown hook 'lbpbench_register_node_type'"):
        get_registry(plugin_dirs=[tmp_path], refresh=True)


def test_missing_plugin_folder_warns(tmp_path):
    with pytest.warns(PluginLoadWarning, match="no such folder"):
        get_registry(plugin_dirs=[tmp_path / "nope"], refresh=True)


# -- plugin folders -----------------------------------------------------------------------------------


def test_plugins_dir_argument(tmp_path):
    aggregator_plugin(tmp_path / "one", "p_one", "from-one")
    aggregator_plugin(tmp_path / "two", "p_two", "from-two")
    reg = get_registry(plugin_dirs=[tmp_path / "one", str(tmp_path / "two")], refresh=True)
    assert {"from-one", "from-two"} <= set(reg.names("aggregator"))
    assert reg.get("aggregator", "from-two").plugin == "p_two"


def test_plugins_dir_env(tmp_path, monkeypatch):
    aggregator_plugin(tmp_path / "one", "e_one", "env-one")
    aggregator_plugin(tmp_path / "two", "e_two", "env-two")
    both = os.pathsep.join([str(tmp_path / "one"), str(tmp_path / "two")])
    monkeypatch.setenv("LBPBENCH_PLUGINS_DIR", both)
    reg = get_registry(refresh=True)
    assert {"env-one", "env-two"} <= set(reg.names("aggregator"))


def test_cwd_plugins_folder_and_dedup(isolated_plugins, monkeypatch):
    aggregator_plugin(isolated_plugins / "plugins", "local", "from-cwd")
    # the same folder again through the argument and the environment: loaded once, no duplicate error
    monkeypatch.setenv("LBPBENCH_PLUGINS_DIR", str(isolated_plugins / "plugins"))
    reg = get_registry(plugin_dirs=["plugins"], refresh=True)
    assert reg.get("aggregator", "from-cwd").plugin == "local"
    assert [p.name for p in reg.plugins].count("local") == 1


def test_folder_loader_ignores_packages_and_private_files(tmp_path):
    aggregator_plugin(tmp_path, "_private", "private")
    aggregator_plugin(tmp_path / "pkg", "inner", "nested")
    reg = get_registry(plugin_dirs=[tmp_path], refresh=True)
    assert not {"private", "nested"} & set(reg.names("aggregator"))


def test_plugin_file_version(tmp_path):
    path = aggregator_plugin(tmp_path, "versioned", "v-agg")
    path.write_text(path.read_text() + "\n__version__ = '2.5'\n")
    assert get_registry(plugin_dirs=[tmp_path], refresh=True).get("aggregator", "v-agg").version == "2.5"


def test_example_median_plugin():
    reg = get_registry(plugin_dirs=[REPO / "plugins"], refresh=True)
    comp = reg.get("aggregator", "median")
    assert comp.plugin == "median_aggregator" and comp.version
    import torch

    agg = reg.create("aggregator", "median", message_size=3)
    edges = torch.tensor([[[1.0], [9.0], [2.0]], [[4.0], [0.0], [5.0]]])  # [B=2, fan-out=3, k=1]
    assert torch.equal(agg.aggregate(edges, dim=1), torch.tensor([[2.0], [4.0]]))
    even = torch.tensor([[1.0, 3.0, 10.0, 2.0]])
    assert torch.equal(agg.aggregate(even, dim=1), torch.tensor([2.5]))


# -- load filter ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, {"fa", "fb"}), ("fa", {"fa"}), (" fa , fb ", {"fa", "fb"}), ("", set()), ("nothing", set())],
)
def test_load_filter(tmp_path, monkeypatch, value, expected):
    aggregator_plugin(tmp_path, "fa", "fa")
    aggregator_plugin(tmp_path, "fb", "fb")
    if value is not None:
        monkeypatch.setenv("LBPBENCH_LOAD_PLUGINS", value)
    reg = get_registry(plugin_dirs=[tmp_path], refresh=True)
    assert {"fa", "fb"} & set(reg.names("aggregator")) == expected
    # built-ins always load
    assert {p.name for p in get_registry(refresh=True).plugins if p.builtin} == {
        p.name for p in reg.plugins if p.builtin
    }


# -- entry points -------------------------------------------------------------------------------------------


def test_entry_point_discovery(signsgd_dist):
    reg = get_registry(refresh=True)
    comp = reg.get("baseline", "signsgd")
    assert (comp.plugin, comp.version) == ("lbpbench-signsgd", "0.1.0")
    assert comp.source == "entry point signsgd = lbpbench_signsgd"
    assert str(signsgd_dist) in sys.modules["lbpbench_signsgd"].__file__  # loaded from the dist found
    baseline = reg.create("baseline", "signsgd")
    assert baseline.name == "signsgd" and len(baseline.lrs) > 0
    import torch

    params, state = baseline.step({"w": torch.zeros(3)}, {"w": torch.tensor([2.0, -0.5, 0.0])}, None, 0.1)
    assert torch.allclose(params["w"], torch.tensor([-0.1, 0.1, 0.0])) and state is None


@pytest.mark.parametrize(
    ("value", "loaded"), [("signsgd", True), ("lbpbench-signsgd", True), ("other", False), ("", False)]
)
def test_entry_point_load_filter(signsgd_dist, monkeypatch, value, loaded):
    monkeypatch.setenv("LBPBENCH_LOAD_PLUGINS", value)
    assert (("baseline", "signsgd") in get_registry(refresh=True)) is loaded


def test_broken_entry_point_is_isolated(tmp_path, monkeypatch):
    site = tmp_path / "site"
    dist_info = site / "lbpbench_broken-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: lbpbench-broken\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[lbpbench]\nbroken = lbpbench_broken_missing_module\n")
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(PluginLoadWarning, match=r"'lbpbench-broken'.*lbpbench_broken_missing_module"):
        reg = get_registry(refresh=True)
    assert any("lbpbench-broken" in p for p in reg.problems)
    monkeypatch.setenv("LBPBENCH_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="lbpbench-broken"):
        get_registry(refresh=True)


def test_pip_installed_plugin_package(tmp_path):
    """The example package really installs with pip and is found through its entry point."""
    target = tmp_path / "target"
    src = tmp_path / "src"
    shutil.copytree(SIGNSGD_SRC, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # setuptools comes with the test extra, so the offline build must work
    assert build.returncode == 0, f"pip could not build the example plugin: {build.stderr[-500:]}"
    code = (
        "from lbpbench.registry import get_registry; c = get_registry().get('baseline', 'signsgd'); "
        "print(c.plugin, c.version, c.source)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    env.pop("LBPBENCH_LOAD_PLUGINS", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == ["lbpbench-signsgd", "0.1.0"]
