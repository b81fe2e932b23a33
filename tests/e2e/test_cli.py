"""The `pixelpool` CLI as a user runs it: a subprocess against `make run`'s program on free ports —
uploads that survive being killed, a project, a task and a COCO export loaded by pycocotools,
progress bars on a terminal, one JSON document with `--json`, and API errors as one line."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import queue
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from pixelpool import Client
from tests.conftest import TESTDATA, poll
from tests.imagefiles import picture

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ["brick.png", "camera.png", "chelsea.png", "coffee.png", "rocket.jpg"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Served:
    api: str
    token: str
    env: dict[str, str]

    def client(self) -> Client:
        return Client(self.api, self.token)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`python -m infra.local` on free ports, and the environment a CLI user would have."""
    api_port, emulator_port = free_port(), free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PIXELPOOL_", "AWS_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local", "--port", str(api_port), "--emulator-port", str(emulator_port)],
        cwd=ROOT, env=clean, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
        banner, deadline = [], time.monotonic() + 90
        while not banner or not banner[-1].startswith("Ctrl-C stops"):
            assert time.monotonic() < deadline, "not ready within 90 s:\n" + "".join(banner)
            try:
                banner.append(lines.get(timeout=1))
            except queue.Empty:
                continue
        token = re.search(r"admin token\s+(\S+)", "".join(banner)).group(1)
        api = f"http://127.0.0.1:{api_port}"
        config = tmp_path_factory.mktemp("config") / "config.json"
        env = {**clean, "PIXELPOOL_URL": api, "PIXELPOOL_TOKEN": token, "PIXELPOOL_CONFIG": str(config),
               "TERM": "xterm-256color", "COLUMNS": "120"}
        yield Served(api, token, env)
    finally:
        process.kill()
        process.wait()


def cli(served: Served, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pixelpool", *args], cwd=ROOT, env=served.env,
                          capture_output=True, text=True, timeout=timeout)


def cli_json(served: Served, *args: str):
    done = cli(served, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def in_terminal(served: Served, *args: str, timeout: float = 120) -> tuple[int, str]:
    """Run the CLI on a pseudo-terminal (120 columns) and return its exit code and what it showed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "pixelpool", *args], cwd=ROOT, env=served.env,
                               stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    shown, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the terminal's other side is closed, the process is done
                    break
                if not chunk:
                    break
                shown += chunk
            elif process.poll() is not None:
                break
        return process.wait(timeout=10), ANSI.sub("", shown.decode(errors="replace"))
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()


def photo_folder(folder: Path, generated: int = 0) -> Path:
    """The real photos, and `generated` more 640×480 JPEGs (distinct pictures) in a sub-folder."""
    folder.mkdir(parents=True)
    for name in PHOTOS:
        (folder / name).write_bytes((TESTDATA / name).read_bytes())
    if generated:
        (folder / "more").mkdir()
        for seed in range(generated):
            (folder / "more" / f"shot-{seed:03}.jpg").write_bytes(picture(640, 480, seed=seed, quality=95))
    return folder


def share_files(client: Client, prefix: str) -> list[dict]:
    """What S3 holds under the prefix (registered or not yet), folder by folder."""
    found, folders = [], [prefix]
    while folders:
        listing = client.data("GET", "/api/v1/share/browse", params={"path": folders.pop(), "page_size": 1000})
        found += [entry for entry in listing["entries"] if entry["type"] == "file"]
        folders += [entry["path"] for entry in listing["entries"] if entry["type"] == "folder"]
    return found


def test_an_upload_killed_half_way_resumes_with_only_the_rest(served, tmp_path):
    # Given a folder of 5 real photos and 120 more pictures
    folder = photo_folder(tmp_path / "shoot", generated=120)
    client = served.client()
    # When an upload, one file at a time, is killed once S3 holds 20 of them
    process = subprocess.Popen([sys.executable, "-m", "pixelpool", "upload", str(folder), "--prefix", "resume",
                                "--workers", "1", "--json"], cwd=ROOT, env=served.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    poll(lambda: len(share_files(client, "resume")), lambda count: count >= 20, "20 files in S3", 60, 0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL, "the upload finished before it could be interrupted"
    # And what reached S3 is ingested
    landed = poll(lambda: share_files(client, "resume"), lambda files: all(f["status"] for f in files),
                  "ingestion of the first part", 60, 0.2)
    assert 20 <= len(landed) < 125
    # Then running the same upload again sends only the rest, and every image is ready
    result = cli_json(served, "upload", str(folder), "--prefix", "resume", "--workers", "4")
    assert (result["total"], result["skipped"], result["uploaded"]) == (125, len(landed), 125 - len(landed))
    assert (result["ready"], result["failed"]) == (125, [])
    images = list(client.images.iter(folder="resume"))
    assert len(images) == 125 and {image.status for image in images} == {"ready"}
    assert {image.file_path for image in images} >= {f"resume/{name}" for name in PHOTOS}
    # And a third run sends nothing
    again = cli_json(served, "upload", str(folder), "--prefix", "resume")
    assert (again["skipped"], again["uploaded"], again["ready"]) == (125, 0, 125)


def test_a_folder_becomes_a_project_task_and_a_coco_export_with_progress_bars(served, tmp_path):
    # Given the real photos uploaded on a terminal: hashing, upload and ingest bars
    folder = photo_folder(tmp_path / "coco")
    code, shown = in_terminal(served, "upload", str(folder), "--prefix", "coco-e2e")
    assert code == 0, shown
    for bar in ("hashing", "uploading", "ingesting"):
        assert re.search(bar + r"\s.*100%", shown), shown
    assert "5 image(s) under 'coco-e2e': 5 uploaded" in shown
    # And a tag on the cat, a project with labels, and a task of the folder (all --json)
    tag = cli_json(served, "tags", "create", "whiskers", "--color", "#10B981")
    registry = cli_json(served, "images", "ls", "--folder", "coco-e2e")
    chelsea = next(image for image in registry if image["filename"] == "chelsea.png")
    assert [t["name"] for t in cli_json(served, "images", "tag", chelsea["id"], "whiskers")["tags"]] == ["whiskers"]
    project = cli_json(served, "projects", "create", "COCO e2e", "--label", "cat:bbox", "--label", "rocket:bbox")
    created = cli_json(served, "tasks", "create", "COCO e2e", "--from-folder", "coco-e2e", "--chunk-size", "5",
                       "--split", "train")
    assert (created["task"]["total_images"], created["task"]["split"], created["failed"]) == (5, "train", [])
    assert project["id"] in {p["id"] for p in cli_json(served, "projects", "ls")}
    explored = cli_json(served, "explore", "COCO e2e", "--tag", "whiskers", "--min-width", "400")
    assert [image["id"] for image in explored] == [chelsea["id"]]
    assert tag["id"] in {t["id"] for t in cli_json(served, "tags", "ls")}
    # And a box on the cat, drawn through the SDK as a labeling tool would
    client = served.client()
    job, = client.tasks.jobs(project["id"], created["task"]["id"])
    client.request("PUT", f"/api/v1/jobs/{job.id}/images/{chelsea['id']}/annotations", json={"annotations": [
        {"type": "bbox", "label": "cat", "bbox": [100, 50, 200, 150], "state": "confirmed"}]})
    # When it is exported as COCO, waited for, downloaded and unpacked on a terminal
    code, shown = in_terminal(served, "export", "COCO e2e", "--mode", "detection", "--format", "coco",
                              "--download", str(tmp_path / "out.zip"), "--unzip", str(tmp_path / "out"))
    assert code == 0, shown
    assert re.search(r"building export\s.*100%.*shards", shown) and re.search(r"downloading\s.*100%", shown), shown
    # Then pycocotools reads the annotations, and the images are there at their real sizes
    from pycocotools.coco import COCO

    coco = COCO(str(tmp_path / "out" / "annotations.json"))
    assert len(coco.getImgIds()) == 5 and [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["cat", "rocket"]
    box, = coco.loadAnns(coco.getAnnIds())
    image = coco.loadImgs(box["image_id"])[0]
    assert image["file_name"].endswith("chelsea.png") and box["bbox"] == [100, 50, 200, 150]
    with Image.open(tmp_path / "out" / "images" / image["file_name"]) as photo:
        assert photo.size == (451, 300)
    listed = cli_json(served, "exports", "ls", "COCO e2e")
    assert listed[0]["status"] == "completed"
    assert listed[0]["artifact_size_bytes"] == (tmp_path / "out.zip").stat().st_size


def test_an_api_error_is_one_line_naming_the_field_with_a_non_zero_exit(served, tmp_path):
    cli_json(served, "projects", "create", "Errors e2e")
    # A format the mode does not have: 422, the field named, exit 1, nothing on stdout
    done = cli(served, "export", "Errors e2e", "--mode", "detection", "--format", "csv")
    assert done.returncode == 1 and done.stdout == ""
    line, = done.stderr.strip().splitlines()
    assert line.startswith("error: 422 validation_error:") and "output_format" in line
    # With --json the same error is one JSON document on stdout
    done = cli(served, "export", "Errors e2e", "--mode", "detection", "--format", "csv", "--json")
    error = json.loads(done.stdout)["error"]
    assert done.returncode == 1 and error["code"] == "validation_error"
    assert [detail["field"] for detail in error["details"]] == ["output_format"]
    # A duplicate is a 409; an unknown project a 404 naming it
    cli_json(served, "tags", "create", "dupe")
    done = cli(served, "tags", "create", "DUPE")
    assert done.returncode == 1 and done.stderr.startswith("error: 409 conflict:")
    done = cli(served, "explore", "No such project")
    assert done.returncode == 1 and "No project named or with id 'No such project'" in done.stderr
    # No API at the other end: exit 5, one line
    done = subprocess.run([sys.executable, "-m", "pixelpool", "tags", "ls"], cwd=ROOT, capture_output=True, text=True,
                          env={**served.env, "PIXELPOOL_URL": f"http://127.0.0.1:{free_port()}"}, timeout=120)
    assert done.returncode == 5 and len(done.stderr.strip().splitlines()) == 1 and "ConnectError" in done.stderr


def test_a_dataset_zip_is_imported_then_deleted_with_a_backup(served, tmp_path):
    # Given a ZIP of two photos and a COCO file naming them
    sizes = {}
    with zipfile.ZipFile(tmp_path / "street.zip", "w") as archive:
        for name in ("chelsea.png", "rocket.jpg"):
            archive.write(TESTDATA / name, f"images/{name}")
            with Image.open(TESTDATA / name) as photo:
                sizes[name] = photo.size
    coco = {"info": {}, "licenses": [], "categories": [{"id": 1, "name": "thing"}],
            "images": [{"id": n, "file_name": f"images/{name}", "width": w, "height": h}
                       for n, (name, (w, h)) in enumerate(sizes.items(), 1)],
            "annotations": [{"id": n, "image_id": n, "category_id": 1, "bbox": [1, 1, 20, 20], "area": 400,
                             "iscrowd": 0} for n in (1, 2)]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    # When it is uploaded (multipart) with its annotations and imported
    done = cli_json(served, "datasets", "upload", str(tmp_path / "street.zip"), "--annotations",
                    str(tmp_path / "coco.json"), "--chunk-size", "1")
    # Then the import made a project of both images and both boxes
    assert [staged["file_name"] for staged in done["staged"]] == ["street.zip", "coco.json"]
    summary = done["import"]["result"]["upload_summary"]
    assert done["import"]["status"] == "completed"
    assert (summary["images_uploaded"], summary["annotations_imported"]) == (2, 2)
    assert cli_json(served, "operations", "wait", done["import"]["id"])["status"] == "completed"
    # And deleting it by name writes a backup and leaves it restorable
    deleted = cli_json(served, "datasets", "delete", "street", "--backup")
    assert (deleted["status"], deleted["result"]["state"]) == ("completed", "deleted")
    assert deleted["result"]["backup_path"].endswith(".zip")
    assert [d["name"] for d in cli_json(served, "datasets", "ls", "--state", "deleted")] == ["street"]


def test_login_stores_the_endpoint_and_token_for_later_commands(served, tmp_path):
    # Given no endpoint or token in the environment
    env = {k: v for k, v in served.env.items() if k not in ("PIXELPOOL_URL", "PIXELPOOL_TOKEN")}
    env["PIXELPOOL_CONFIG"] = str(tmp_path / "pixelpool.json")
    run = lambda *args: subprocess.run([sys.executable, "-m", "pixelpool", *args], cwd=ROOT, env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    assert run("whoami").returncode == 5
    # When the user logs in
    logged = run("login", "--url", served.api, "--token", served.token, "--json")
    assert logged.returncode == 0, logged.stderr
    # Then the token is kept for its owner only, and the next command uses it
    assert (tmp_path / "pixelpool.json").stat().st_mode & 0o777 == 0o600
    me = json.loads(run("whoami", "--json").stdout)
    assert (me["url"], me["user"]["sub"]) == (served.api, json.loads(logged.stdout)["user"])
    # And a token the API refuses is not stored
    refused = run("login", "--url", served.api, "--token", "not-a-token")
    assert refused.returncode == 1 and refused.stderr.startswith("error: 401 unauthorized:")
    assert json.loads((tmp_path / "pixelpool.json").read_text())["token"] == served.token
