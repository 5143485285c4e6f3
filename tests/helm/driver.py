"""Drives real Helm (its Go library, through PyPI's helm-python-sdk) for
the chart's tests and `make deploy`: lint, template, install, upgrade,
uninstall. Each command prints one JSON object on stdout; a Helm error
exits 1 with its message on stderr.

    driver.py lint CHART [VALUES_JSON]
    driver.py template CHART RELEASE NAMESPACE VALUES_JSON OUT
    driver.py install|upgrade CHART RELEASE NAMESPACE VALUES_JSON KUBECONFIG
    driver.py uninstall RELEASE NAMESPACE KUBECONFIG
    driver.py status RELEASE NAMESPACE KUBECONFIG
"""

import json
import sys

import helm_python as helm


def _values(text):
    return json.loads(text) if text else {}


def lint(chart, values=""):
    report = helm.lint(chart, _values(values), strict=True)
    return {
        "messages": [
            {"severity": m.get("severity"), "path": m.get("path"), "error": m.get("error")}
            for m in report.get("messages") or []
        ],
        "errors": report.get("errors") or [],
    }


def template(chart, release, namespace, values, out):
    c = helm.Chart.load(chart)
    vals = _values(values)
    c.validate_schema(vals)
    rendered = c.render(vals, name=release, namespace=namespace, is_install=True)
    docs = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt") or not rendered[path].strip():
            continue
        body = rendered[path].strip("\n")
        docs.append(f"# Source: {path}\n{body}\n")
    with open(out, "w", encoding="utf-8") as f:
        f.write("---\n".join(docs))
    return {"templates": len(docs), "out": out}


def _summary(release):
    # the library answers with the release flattened (revision, status);
    # Helm's own JSON nests them (version, info.status)
    info = release.get("info") or {}
    return {
        "name": release.get("name"),
        "namespace": release.get("namespace"),
        "version": release.get("revision", release.get("version")),
        "status": release.get("status", info.get("status")),
    }


def install(chart, release, namespace, values, kubeconfig):
    cfg = helm.Config(kubeconfig_path=kubeconfig, namespace=namespace)
    r = cfg.install(chart, release, _values(values), namespace=namespace,
                    create_namespace=True, timeout=120)
    return _summary(r)


def upgrade(chart, release, namespace, values, kubeconfig):
    cfg = helm.Config(kubeconfig_path=kubeconfig, namespace=namespace)
    r = cfg.upgrade(chart, release, _values(values), namespace=namespace, timeout=120)
    return _summary(r)


def uninstall(release, namespace, kubeconfig):
    cfg = helm.Config(kubeconfig_path=kubeconfig, namespace=namespace)
    r = cfg.uninstall(release, timeout=120)
    return {"info": (r or {}).get("info", "")}


def status(release, namespace, kubeconfig):
    cfg = helm.Config(kubeconfig_path=kubeconfig, namespace=namespace)
    return _summary(cfg.status(release))


COMMANDS = {
    "lint": lint,
    "template": template,
    "install": install,
    "upgrade": upgrade,
    "uninstall": uninstall,
    "status": status,
}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        result = COMMANDS[argv[1]](*argv[2:])
    except TypeError as e:
        print(f"{argv[1]}: {e}", file=sys.stderr)
        return 2
    except helm.HelmError as e:  # every error of the library
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
