"""deploy/kubernetes/: every manifest is valid against Kubernetes' own OpenAPI
schemas (vendored in tests/kubernetes/, checked offline and strictly: an
unknown field fails), the validator really rejects broken manifests, and the
manifests agree with sluice: the ConfigMap's config passes `sluice --check`,
the probes hit /healthz and /readyz on the admin port, the grace period covers
shutdown_delay_ms + shutdown_grace_ms + shedding, the pod runs as the image's
non-root user on a read-only root filesystem."""

import copy
import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "kubernetes"))
import validate_manifests as vm  # noqa: E402

DEPLOY = os.path.join(ROOT, "deploy", "kubernetes")
SLUICE = os.environ.get("SLUICE_BIN", os.path.join(ROOT, "build", "sluice"))


def manifests():
    out = {}
    for name in sorted(os.listdir(DEPLOY)):
        if name.endswith(".yaml"):
            for doc in vm.load_all(os.path.join(DEPLOY, name)):
                out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


class Schemas(unittest.TestCase):
    def test_every_manifest_is_valid(self):
        docs = manifests()
        self.assertIn(("Deployment", "sluice"), docs)
        self.assertIn(("Service", "sluice"), docs)
        self.assertIn(("ConfigMap", "sluice"), docs)
        self.assertIn(("Service", "redis-backends"), docs)
        for key, doc in docs.items():
            self.assertEqual(vm.errors_in(doc), [], key)

    def test_the_validator_rejects_broken_manifests(self):
        dep = manifests()[("Deployment", "sluice")]
        pod = ["spec", "template", "spec"]

        def broken(change):
            d = copy.deepcopy(dep)
            change(d)
            return vm.errors_in(d)

        def at(d, path):
            for p in path:
                d = d[p]
            return d

        # A misspelt field: kubectl apply --validate=strict refuses it too.
        errs = broken(lambda d: at(d, pod).update(terminationGracePeriodSecond=40))
        self.assertTrue(any("terminationGracePeriodSecond" in e for e in errs), errs)
        errs = broken(lambda d: d["spec"].update(replicas="two"))
        self.assertTrue(any(e.startswith("spec.replicas:") for e in errs), errs)
        errs = broken(lambda d: at(d, pod)["containers"][0].pop("name"))
        self.assertTrue(any("'name' is a required property" in e for e in errs), errs)
        errs = broken(lambda d: at(d, pod)["containers"][0]["ports"][0].update(containerPort="x"))
        self.assertTrue(any("containerPort" in e for e in errs), errs)
        errs = broken(lambda d: d.update(apiVersion="extensions/v1beta1"))
        self.assertTrue(errs and "apiVersion/kind" in errs[0], errs)
        # IntOrString takes either, as the API server does.
        self.assertEqual(broken(lambda d: at(d, pod)["containers"][0]["livenessProbe"]
                                ["httpGet"].update(port=9090)), [])


class AgreesWithSluice(unittest.TestCase):
    def setUp(self):
        docs = manifests()
        self.dep = docs[("Deployment", "sluice")]
        self.cm = docs[("ConfigMap", "sluice")]
        self.svc = docs[("Service", "sluice")]
        self.headless = docs[("Service", "redis-backends")]
        self.cfg = json.loads(self.cm["data"]["sluice.json"])
        self.pod = self.dep["spec"]["template"]["spec"]
        self.c = self.pod["containers"][0]

    def test_config_passes_sluice_check(self):
        # The backends are the headless Service's pods, one per address, found
        # by DNS discovery: a cluster name that does not resolve here is no
        # error at load ("resolve": "all" starts empty and fills).
        text = self.cm["data"]["sluice.json"]
        backend = self.cfg["pools"][0]["backends"][0]
        host = backend["address"].rsplit(":", 1)[0]
        self.assertTrue(host.startswith(self.headless["metadata"]["name"] + "."), host)
        self.assertEqual(backend.get("resolve"), "all")
        self.assertTrue(self.cfg.get("watch_config"))
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write(text)
        try:
            r = subprocess.run([SLUICE, "--check", "-c", f.name], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        finally:
            os.unlink(f.name)
        self.assertEqual(self.headless["spec"]["clusterIP"], "None")

    def test_grace_period_covers_delay_grace_and_shedding(self):
        cfg = self.cfg
        max_conns = sum(l.get("max_connections", 10000) for l in cfg["listeners"])
        need_s = (cfg.get("shutdown_delay_ms", 0) + cfg.get("shutdown_grace_ms", 10000)) / 1000
        rate = cfg.get("shed_rate_per_s", 1000)
        need_s += (max_conns / rate if rate else 0) + 2
        self.assertGreaterEqual(self.pod["terminationGracePeriodSeconds"], need_s)

    def test_probes_and_ports_match_the_config(self):
        ports = {p["name"]: p["containerPort"] for p in self.c["ports"]}
        admin_port = int(self.cfg["admin"]["listen"].rsplit(":", 1)[1])
        self.assertEqual(ports["admin"], admin_port)
        self.assertEqual(ports["redis"], int(self.cfg["listeners"][0]["listen"].rsplit(":", 1)[1]))
        self.assertEqual(self.c["livenessProbe"]["httpGet"]["path"], "/healthz")
        self.assertEqual(self.c["readinessProbe"]["httpGet"]["path"], "/readyz")
        for probe in ("livenessProbe", "readinessProbe"):
            self.assertIn(self.c[probe]["httpGet"]["port"], ("admin", admin_port))
        # The admin API binds a non-loopback address: a token is required.
        env = {e["name"]: e for e in self.c["env"]}
        self.assertIn("secretKeyRef", env["SLUICE_ADMIN_TOKEN"]["valueFrom"])
        svc_targets = {p["targetPort"] for p in self.svc["spec"]["ports"]}
        self.assertEqual(svc_targets, {"redis", "admin"})
        self.assertEqual(self.svc["spec"]["selector"],
                         self.dep["spec"]["template"]["metadata"]["labels"])

    def test_hardened_pod(self):
        with open(os.path.join(ROOT, "docker", "Dockerfile")) as f:
            user = [l.split()[1] for l in f if l.startswith("USER ")][-1]
        uid, gid = (int(x) for x in user.split(":"))
        psc, csc = self.pod["securityContext"], self.c["securityContext"]
        self.assertTrue(psc["runAsNonRoot"])
        self.assertEqual((psc["runAsUser"], psc["runAsGroup"]), (uid, gid))
        self.assertTrue(csc["readOnlyRootFilesystem"])
        self.assertFalse(csc["allowPrivilegeEscalation"])
        self.assertEqual(csc["capabilities"]["drop"], ["ALL"])
        self.assertIn("cpu", self.c["resources"]["requests"])
        self.assertIn("memory", self.c["resources"]["requests"])
        # The config comes from the ConfigMap, at the path sluice is given.
        mount = self.c["volumeMounts"][0]
        vol = {v["name"]: v for v in self.pod["volumes"]}[mount["name"]]
        self.assertEqual(vol["configMap"]["name"], self.cm["metadata"]["name"])
        self.assertEqual(self.c["args"], ["-c", mount["mountPath"] + "/sluice.json"])
        # A memory limit needs an explicit buffer budget: the default is an
        # eighth of the node's RAM, not of the container's limit.
        self.assertIn("buffer_memory_limit", self.cfg)


if __name__ == "__main__":
    unittest.main()
