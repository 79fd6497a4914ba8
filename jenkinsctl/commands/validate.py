"""jenkinsctl validate [FILE]: check a config file and print it resolved,
like `docker compose config` or `nginx -t`."""

from __future__ import annotations

DESCRIPTION = ("Check a config file and print it resolved: defaults applied, environment overrides merged, "
               "secrets shown only as references. Exits non-zero on any error.")


def add_arguments(p) -> None:
    p.add_argument("file", nargs="?", metavar="FILE", help="config file (default: --config, else ./jenkinsctl.yaml)")


def run(args, ctx):
    from jenkinsctl.config import load_document

    doc, source = load_document(args.file or ctx.config_path)
    return {"source": source, "config": doc}


def render(result) -> str:
    import yaml

    head = f"# {result['source']}: valid\n"
    return head + yaml.safe_dump(result["config"], sort_keys=False, default_flow_style=False)
