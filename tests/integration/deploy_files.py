"""Reading deploy/: its files, the commands they run, and a checker for those commands.

Used by test_deploy_manifests.py. Commands are collected from the compose files
(docker-compose.yml and the Sentinel one: commands, healthchecks), the Kubernetes
manifests (commands, probes; the base and the sentinel overlay), the systemd units
(Exec lines) and the start scripts, looking inside ``sh -c``; a ``clonequeue``
command is checked against the real CLI's command tree, and options it passes
through, against Celery's or Flower's.
"""

from __future__ import annotations

import copy
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer.main
import yaml

from clonequeue.cli.main import app as cli_app

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCRIPTS = DEPLOY / "scripts"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
COMPOSE_SENTINEL_FILE = DEPLOY / "docker-compose.sentinel.yml"
COMPOSE_FILES = (COMPOSE_FILE, COMPOSE_SENTINEL_FILE)
K8S_SENTINEL = K8S / "sentinel"
SENTINEL_MONITOR = re.compile(r"sentinel monitor ([^\s'\"]+) ([^\s'\"]+) ([^\s'\"]+) ([^\s'\"]+)")
SHELL_OPERATORS = set(";&|<>()")


# --- reading the files ------------------------------------------------------------------------


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert docs, f"{path} has no YAML document"
    assert all(isinstance(doc, dict) for doc in docs), path
    return docs


def k8s_files() -> list[Path]:
    return sorted(K8S.rglob("*.yaml"))


def k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in k8s_files() for doc in yaml_documents(path)]


def k8s_base() -> list[dict[str, Any]]:
    """The objects `kubectl apply -k deploy/k8s` creates."""
    return kustomize(K8S)


def k8s_sentinel() -> list[dict[str, Any]]:
    """The objects `kubectl apply -k deploy/k8s/sentinel` creates."""
    return kustomize(K8S_SENTINEL)


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """What kustomize builds here, for what our files use: resources (files or other
    kustomizations), ``$patch: delete`` patches, and strategic-merge patches of maps."""
    kustomization = yaml_documents(directory / "kustomization.yaml")[0]
    objects: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        path = (directory / name).resolve()
        objects += kustomize(path) if path.is_dir() else yaml_documents(path)
    for patch in kustomization.get("patches", []):
        for doc in yaml_documents(directory / patch["path"]):
            key = (doc["kind"], doc["metadata"]["name"])
            [target] = [o for o in objects if (o["kind"], o["metadata"]["name"]) == key]
            if doc.get("$patch") == "delete":
                objects.remove(target)
            else:
                objects[objects.index(target)] = merged(target, doc)
    return objects


def merged(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A strategic merge of maps (lists are replaced, which our patches never touch)."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def is_delete_patch(doc: dict[str, Any]) -> bool:
    return doc.get("$patch") == "delete"


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        o for o in objects if o["kind"] in ("Deployment", "StatefulSet") and not is_delete_patch(o)
    ]


def by_kind_and_name(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    [doc] = yaml_documents(path)
    return doc


def sentinel_monitors(text: str) -> list[tuple[str, str, str, str]]:
    """(master name, host, port, quorum) of each ``sentinel monitor`` line in ``text``."""
    return [m.groups() for m in SENTINEL_MONITOR.finditer(text)]  # type: ignore[misc]


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit as {section: [(key, value), …]}; keys may repeat, as in systemd."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert current is not None, f"{path}:{number}: outside a [section]"
        assert sep, f"{path}:{number}: not key=value: {raw!r}"
        assert key.strip(), f"{path}:{number}: no key: {raw!r}"
        current.append((key.strip(), value.strip()))
    assert not pending, f"{path}: ends with a continuation"
    return sections


def unit_values(unit: dict[str, list[tuple[str, str]]], key: str) -> list[str]:
    return [v for section in unit.values() for k, v in section if k == key]


def env_file(path: Path) -> dict[str, str]:
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path}: {raw!r}"
            values[key] = value
    return values


def logical_lines(text: str) -> list[str]:
    """Shell lines with backslash continuations joined, comments and blanks dropped."""
    lines, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def shell_words(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


# --- the commands the manifests run -----------------------------------------------------------


@dataclass
class Invocation:
    where: str
    words: list[str]  # after the program name


def split_argv(argv: list[str], where: str) -> Iterator[tuple[str, list[str]]]:
    """(program, arguments) of each command in ``argv``, looking inside ``sh -c``."""
    if not argv:
        return
    if Path(argv[0]).name in ("sh", "bash") and len(argv) >= 3 and argv[1] == "-c":
        yield from split_shell(argv[2], where)
        return
    yield Path(argv[0]).name, list(argv[1:])


def split_shell(text: str, where: str) -> Iterator[tuple[str, list[str]]]:
    for line in logical_lines(text):
        words = shell_words(line)
        while words:
            if words[0] in ("exec", "until", "while", "if", "!", "then", "do"):
                words = words[1:]
                continue
            command = []
            while words and not set(words[0]) <= SHELL_OPERATORS:
                command.append(words.pop(0))
            while words and set(words[0]) <= SHELL_OPERATORS:
                operator = words.pop(0)
                if operator[-1] in "<>" and words:
                    words.pop(0)  # the redirection's target
            if command:
                yield Path(command[0]).name, command[1:]


def compose_commands() -> Iterator[tuple[str, list[str]]]:
    for path in COMPOSE_FILES:
        for name, service in compose(path)["services"].items():
            where = f"{path.name} {name}"
            command = service.get("command")
            if command:
                argv = shlex.split(command) if isinstance(command, str) else list(command)
                # $$ is compose's escape for a literal $.
                yield where, [word.replace("$$", "$") for word in argv]
            test = (service.get("healthcheck") or {}).get("test")
            if test and test[0] == "CMD-SHELL":
                yield f"{where} healthcheck", ["sh", "-c", test[1].replace("$$", "$")]
            elif test and test[0] == "CMD":
                yield f"{where} healthcheck", list(test[1:])


def pod_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return containers


def k8s_commands() -> Iterator[tuple[str, list[str]]]:
    for path, doc in k8s_objects():
        if doc["kind"] not in ("Deployment", "StatefulSet") or is_delete_patch(doc):
            continue
        for container in pod_containers(doc):
            where = f"{path.name} {doc['metadata']['name']}/{container['name']}"
            argv = list(container.get("command") or []) + list(container.get("args") or [])
            if container.get("command"):
                yield where, argv
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                command = ((container.get(probe) or {}).get("exec") or {}).get("command")
                if command:
                    yield f"{where} {probe}", list(command)


def systemd_commands() -> Iterator[tuple[str, list[str]]]:
    for path in sorted(SYSTEMD.glob("*.service")):
        unit = parse_unit(path)
        for key in ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop"):
            for value in unit_values(unit, key):
                yield f"{path.name} {key}", shlex.split(value.lstrip("-@+!:"))


def script_commands() -> Iterator[tuple[str, list[str]]]:
    for path in sorted(SCRIPTS.glob("*.sh")):
        yield path.name, ["sh", "-c", path.read_text()]


def all_commands() -> list[tuple[str, str, list[str]]]:
    """(where, program, arguments) of every command deploy/ runs."""
    found = []
    for source in (compose_commands, k8s_commands, systemd_commands, script_commands):
        for where, argv in source():
            found += [(where, program, args) for program, args in split_argv(argv, where)]
    return found


def clonequeue_invocations() -> list[Invocation]:
    return [Invocation(w, args) for w, program, args in all_commands() if program == "clonequeue"]


def script_references() -> list[tuple[str, str]]:
    return [(w, program) for w, program, _ in all_commands() if program.startswith("start-")]


# --- checking an invocation against the real CLI ----------------------------------------------


def passthrough_options(subcommand: str) -> Any:
    """What ``clonequeue <subcommand>`` hands unknown options to."""
    if subcommand == "worker":
        from celery.bin.worker import worker

        return worker
    if subcommand == "beat":
        from celery.bin.beat import beat

        return beat
    if subcommand == "inspect":
        from celery.bin.control import inspect

        return inspect
    if subcommand == "flower":
        return "flower"
    raise AssertionError(f"clonequeue {subcommand} passes options through to nothing known")


# Typer vendors its own click, so its commands are not click's classes: duck typing.


def option_table(command: Any) -> dict[str, Any]:
    table = {}
    for param in command.params:
        if param.param_type_name == "option":
            for name in [*param.opts, *param.secondary_opts]:
                table[name] = param
    return table


def is_option(word: str) -> bool:
    return word.startswith("-") and word not in ("-", "--") and not word[1:2].isdigit()


def check_passed_through(subcommand: str, word: str, where: str) -> None:
    target = passthrough_options(subcommand)
    name = word.split("=", 1)[0]
    if target == "flower":
        from flower.command import is_flower_option

        assert is_flower_option(word), f"{where}: Flower has no option {name}"
        return
    assert name in option_table(target), f"{where}: celery {subcommand} has no option {name}"


def check_invocation(invocation: Invocation) -> str:
    """Assert the subcommand and every option exist; return the subcommand's path."""
    where, words = invocation.where, list(invocation.words)
    command: Any = typer.main.get_command(cli_app)
    path = []
    while hasattr(command, "commands"):
        assert words, f"{where}: `clonequeue {' '.join(path)}` needs a subcommand"
        name = words.pop(0)
        assert name in command.commands, f"{where}: clonequeue has no command {name!r}"
        command = command.commands[name]
        path.append(name)
    subcommand = " ".join(path)
    passes_through = bool(command.context_settings.get("ignore_unknown_options"))
    options = option_table(command)
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    positionals: list[str] = []
    while words:
        word = words.pop(0)
        if word in ('"$@"', "$@"):
            continue
        if not is_option(word):
            positionals.append(word)
            continue
        name = word.split("=", 1)[0]
        if name in options:
            if not options[name].is_flag and "=" not in word:
                assert words, f"{where}: {name} needs a value"
                words.pop(0)
            continue
        assert passes_through, f"{where}: clonequeue {subcommand} has no option {name}"
        check_passed_through(subcommand, word, where)
        if "=" not in word and words and not is_option(words[0]):
            words.pop(0)  # its value (a flag would be followed by an option or nothing)
    assert len(positionals) <= len(arguments) or passes_through, (
        f"{where}: clonequeue {subcommand} takes no argument {positionals[len(arguments)]!r}"
    )
    if subcommand == "inspect":
        from celery.worker.control import Panel

        assert positionals, f"{where}: clonequeue inspect needs a command"
        meta = Panel.meta.get(positionals[0])
        assert meta is not None, f"{where}: {positionals[0]!r} is not a celery command"
        assert meta.type == "inspect", f"{where}: {positionals[0]!r} is not an inspect command"
    return subcommand
