"""The committed deployment files agree with the code."""

from pathlib import Path

import yaml

from topics.manifests import strimzi_topics
from topics.specs import topic_specs

ROOT = Path(__file__).resolve().parents[2]


def test_strimzi_topics_match_the_specs():
    committed = (ROOT / "deploy/k8s/topics.yaml").read_text(encoding="utf-8")
    assert committed == strimzi_topics(topic_specs(6, 3)), "stale: run 'feedback-miner topics manifest > deploy/k8s/topics.yaml'"
    names = [doc["spec"]["topicName"] for doc in yaml.safe_load_all(committed)]
    assert names == [s.name for s in topic_specs()]


def test_stage_manifests_run_registered_stages():
    from pipelines.stages import STAGES

    docs = list(yaml.safe_load_all((ROOT / "deploy/k8s/stages.yaml").read_text(encoding="utf-8")))
    args = [d["spec"]["template"]["spec"]["containers"][0]["args"] for d in docs if d["kind"] == "Deployment"]
    assert all(a[0] == "consume" for a in args)
    # Every registered stage has a deployment (manifests may be ahead of the code, never behind).
    assert set(STAGES) <= {a[1] for a in args}


def test_prefect_deployments_point_at_flows():
    import importlib

    spec = yaml.safe_load((ROOT / "deploy/prefect.yaml").read_text(encoding="utf-8"))
    for deployment in spec["deployments"]:
        path, name = deployment["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert callable(getattr(module, name)), deployment["entrypoint"]
