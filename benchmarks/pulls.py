"""Pulls of N images from a loopback registry: the compose backend's (all at once, up to
eight in parallel, through the Engine API, with their progress) against `docker compose
pull` (which pulls in parallel too), in the same run, interleaved; every round begins with
none of the images on the engine.

    python benchmarks/pulls.py [--images 6] [--layers 3] [--megabytes 4] [--reps 5]
                               [--engine docker|podman] [--json FILE]

A registry (Debian's docker-registry) is started here on a free loopback port, the images
(each ``--layers`` layers of random bytes, ``--megabytes`` MB in all, over an empty base)
are built and pushed here; the registry, the images and (for ``--engine podman``) a
Podman API service of our own are stopped and removed after. Both sides pull the same
compose file's images: ours is the backend's image fetches alone (images.py, planned
and run as a stack's preparation runs them, no container created), timed from the plan
to the last pull's end; compose's is the `pull` subcommand of the Go binary, timed as a
process (its start-up, ~50 ms, included).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
# the registry and the Podman service the tests start
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from chains import shown, spread, write_json
from compose_stack import IMAGE, build_image
from enginekit import PodmanService, Registry, start_podman, start_registry

from pytest_pyairtable.backends.builds import Builder
from pytest_pyairtable.backends.composecli import ComposeCommand
from pytest_pyairtable.backends.composedetect import detect_compose
from pytest_pyairtable.backends.engines import connect, locate
from pytest_pyairtable.backends.images import Images
from pytest_pyairtable.model.spec import load_stack


def docker(*args: str, host: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *(["-H", host] if host else []), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def forget(images: list[str], host: str | None) -> None:
    present = [i for i in images if docker("image", "inspect", i, host=host).returncode == 0]
    if present:
        docker("rmi", "-f", *present, host=host)


def ours(compose_file: Path, argv: list[str]) -> float:
    """Seconds from the plan of every service's image to the last pull's end."""
    stack = load_stack(compose_file, environ={})
    location = locate()
    api, engine = connect(location)
    command = ComposeCommand(argv, [compose_file], None, "pa-bench-pulls")
    images = Images(
        location=location,
        engine=lambda: (api, engine),
        builder=Builder(command, location, lambda name: compose_file.parent / f"{name}.log"),
        project="pa-bench-pulls",
    )
    try:
        started = time.perf_counter()
        planned = images.plan(list(stack.services.values()))
        for fetch in planned.values():
            assert fetch is not None and fetch.wait(600) and fetch.error is None, fetch
        return time.perf_counter() - started
    finally:
        images.close()
        api.close()


def compose_pull(compose_file: Path, argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [*argv, "-f", str(compose_file), "-p", "pa-bench-pulls", "pull", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - started
    assert done.returncode == 0, done.stdout + done.stderr
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--megabytes", type=float, default=4.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--engine", choices=("docker", "podman"), default="docker")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    build_image()
    registry = start_registry()
    if isinstance(registry, str):
        sys.exit(f"no registry: {registry}")
    podman: PodmanService | str | None = None
    refs: list[str] = []
    try:
        size = int(args.megabytes * 1e6 / args.layers)
        for n in range(args.images):
            refs.append(registry.push(f"bench/app{n}:1", (size,) * args.layers, from_image=IMAGE))
        host = None
        if args.engine == "podman":
            podman = start_podman()
            if isinstance(podman, str):
                sys.exit(f"no Podman: {podman}")
            host = podman.host
            os.environ["DOCKER_HOST"] = host
        run(args, refs, registry, host)
    finally:
        if isinstance(podman, PodmanService):
            forget(refs, podman.host)
            podman.stop()
        forget(refs, None)
        registry.stop()


def run(args: argparse.Namespace, refs: list[str], registry: Registry, host: str | None) -> None:
    argv, found = detect_compose("docker-compose")
    with tempfile.TemporaryDirectory() as tmp:
        compose_file = Path(tmp) / "docker-compose.yml"
        compose_file.write_text(
            "services:\n"
            + "".join(
                f"  s{n}: {{image: {ref}, command: ['true']}}\n" for n, ref in enumerate(refs)
            )
        )
        ours_s, compose_s = [], []
        for rep in range(args.reps):  # interleaved, each from none of the images
            for side in ("ours", "compose") if rep % 2 == 0 else ("compose", "ours"):
                forget(refs, host)
                took = (
                    ours(compose_file, argv) if side == "ours" else compose_pull(compose_file, argv)
                )
                (ours_s if side == "ours" else compose_s).append(took)
    ratio = spread(ours_s)["median"] / spread(compose_s)["median"]
    print(
        f"{args.images} images x {args.layers} layers, {args.megabytes:g} MB each, from "
        f"{registry.address}, engine {args.engine}, compose {found}, {args.reps} rounds"
    )
    print(f"ours (backend's pulls): {shown(ours_s)}")
    print(f"docker compose pull:    {shown(compose_s)}")
    print(f"ratio ours/compose (medians): {ratio:.2f}")
    write_json(
        args.json,
        {
            "images": args.images,
            "layers": args.layers,
            "megabytes": args.megabytes,
            "engine": args.engine,
            "compose": found,
            "ours": {"samples": ours_s, **spread(ours_s)},
            "compose_pull": {"samples": compose_s, **spread(compose_s)},
            "ratio": ratio,
        },
    )


if __name__ == "__main__":
    main()
