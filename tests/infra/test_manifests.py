"""infra/: the cluster-launcher YAML, the KubeRay manifests and the Dockerfile say what they must."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from pseudo3d.cli import make_parser

INFRA = Path(__file__).resolve().parents[2] / "infra"


def _pseudo3d_commands(text: str) -> list[list[str]]:
    """Every ``pseudo3d ...`` command line in ``text`` (comments and YAML strings), as arguments."""
    commands = []
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip().lstrip("#").strip().strip("-").strip()
        if "pseudo3d build" in line or line.startswith("pseudo3d "):
            words = shlex.split(line[line.index("pseudo3d"):].split("#")[0])
            commands.append(words[1:])
    return commands


def _check_real_command(arguments: list[str]) -> None:
    if arguments == ["--version"]:
        return
    parsed = make_parser().parse_args(arguments)      # exits (SystemExit) on an unknown option
    assert callable(parsed.func)


def test_cluster_launcher_has_cpu_and_gpu_workers_and_binds_the_dashboard_locally():
    text = (INFRA / "ray" / "cluster.yaml").read_text()
    config = yaml.safe_load(text)
    types = config["available_node_types"]
    assert {"head", "cpu_worker", "gpu_worker"} <= set(types)
    assert config["head_node_type"] == "head"
    assert "--gpus all" in types["gpu_worker"]["docker"]["worker_run_options"]
    head = " ".join(config["head_start_ray_commands"])
    assert "ray start --head" in head and "--dashboard-host=127.0.0.1" in head
    assert all("ray start --address=$RAY_HEAD_IP" in c for c in config["worker_start_ray_commands"] if "start" in c)
    commands = _pseudo3d_commands(text)
    assert commands and any(c[0] == "build" and "--runner" in c for c in commands)
    for command in commands:
        _check_real_command(command)


@pytest.mark.parametrize("name", ["rayjob.yaml", "raycluster.yaml"])
def test_kuberay_manifests_have_cpu_and_gpu_groups_and_real_entrypoints(name):
    text = (INFRA / "kuberay" / name).read_text()
    manifest = yaml.safe_load(text)
    assert manifest["apiVersion"] == "ray.io/v1"
    cluster = manifest["spec"]["rayClusterSpec"] if manifest["kind"] == "RayJob" else manifest["spec"]
    assert cluster["rayVersion"] == "2.60.0"
    groups = {group["groupName"]: group for group in cluster["workerGroupSpecs"]}
    gpu_limits = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu_limits["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in groups["cpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    if manifest["kind"] == "RayJob":
        entrypoint = shlex.split(manifest["spec"]["entrypoint"])
        assert entrypoint[0] == "pseudo3d"
        _check_real_command(entrypoint[1:])
        assert entrypoint[entrypoint.index("--runner") + 1] == "ray"
    for command in _pseudo3d_commands(text):
        _check_real_command(command)


def test_the_network_policy_admits_only_ray_pods():
    policy = yaml.safe_load((INFRA / "kuberay" / "networkpolicy.yaml").read_text())
    assert policy["kind"] == "NetworkPolicy" and policy["spec"]["policyTypes"] == ["Ingress"]
    sources = [rule["podSelector"]["matchLabels"] for rule in policy["spec"]["ingress"][0]["from"]]
    assert {"ray.io/is-ray-node": "yes"} in sources


def test_the_image_installs_pseudo3d_with_ray_at_the_pinned_version():
    dockerfile = (INFRA / "docker" / "Dockerfile").read_text()
    assert "rayproject/ray:2.60.0" in dockerfile
    assert '-c constraints.txt ".[ray,train,s3,gcs]"' in dockerfile
    pins = (INFRA.parent / "constraints.txt").read_text()
    assert "ray==2.60.0" in pins


def _script_commands(path: Path) -> list[list[str]]:
    """The ``pseudo3d build`` commands of a shell script, commented examples included, with each
    ``$VAR`` replaced by its default (``${VAR:-default}``) or a placeholder (``${VAR:?...}``)."""
    text = path.read_text()
    values = {name: default if kind == "-" else f"/shared/{name.lower()}"
              for name, kind, default in re.findall(r"^(\w+)=\$\{\w+:([-?])([^}]*)\}", text, re.M)}
    lines = [re.sub(r"^\s*#\s?", "", line) for line in text.splitlines()]
    text = "\n".join(lines).replace("\\\n", " ")
    text = text.replace('"${JAR_OPTION[@]}"', "")
    text = re.sub(r"\$\{?(\w+)\}?", lambda match: values.get(match.group(1), match.group(0)), text)
    commands = []
    for line in text.splitlines():
        if "pseudo3d build " in line:
            commands.append(shlex.split(line[line.index("pseudo3d build "):])[1:])
    return commands


@pytest.mark.parametrize("name, runner", [("flink.sh", "FlinkRunner"), ("dataflow.sh", "DataflowRunner")])
def test_beam_scripts_run_real_commands_with_real_beam_options(name, runner):
    pytest.importorskip("apache_beam")
    from pseudo3d.pipelines.runners.beam import pipeline_options

    commands = _script_commands(INFRA / "beam" / name)
    assert commands
    for arguments in commands:
        parsed = make_parser().parse_args(arguments)
        assert parsed.runner == "beam"
        options = pipeline_options(parsed.beam_option).get_all_options()   # every key and value is Beam's
        assert options["runner"] == runner
    if runner == "FlinkRunner":
        assert options["environment_type"] == "EXTERNAL" and options["flink_version"]
    else:
        assert options["sdk_container_image"] and options["temp_location"].startswith("/shared/bucket")


def test_the_beam_image_matches_the_pinned_beam():
    dockerfile = (INFRA / "beam" / "Dockerfile").read_text()
    assert "apache/beam_python3.11_sdk:2.77.0" in dockerfile
    assert '-c constraints.txt ".[beam,train,gcs,s3]"' in dockerfile
    assert "apache-beam==2.77.0" in (INFRA.parent / "constraints.txt").read_text()
