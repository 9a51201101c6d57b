import json
import os
import re

from keras_gen import zoo
from tests.conftest import REPO


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    with open(os.path.join(REPO, "README.md")) as file:
        blocks = re.findall(r"```bash\n(.*?)\n```", file.read(), re.S)
    install_and_run, install_and_test = blocks[0], blocks[1]
    assert "quickstart" in install_and_run and "pip install -r requirements.txt" in install_and_run
    with open(os.path.join(REPO, ".ci", "run")) as file:
        ci = file.read()
    assert install_and_test.replace("pip install", "pip install -q") in ci


def markdown_table_rows(text, header):
    """The rows (lists of stripped cells) of the markdown table whose header starts with `header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:  # past the header and its |---| line
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def test_readme_zoo_latency_is_one_benchmark_run_of_every_zoo_model(monkeypatch):
    # The README's two latency columns, the cards and benchmarks/results come from one run
    # of benchmarks/zoo_latency.py --write-cards, not rows patched in from other days.
    monkeypatch.syspath_prepend(os.path.join(REPO, "benchmarks"))
    import zoo_latency

    with open(os.path.join(REPO, "README.md")) as file:
        readme = file.read()
    with open(os.path.join(REPO, "benchmarks", "results", "zoo_latency.json")) as file:
        run = json.load(file)["rows"]
    assert sorted(row["name"] for row in run) == zoo.names()

    table = zoo_latency.latency_table(run)
    assert "\n".join(table) + "\n\n" in readme, "the README's latency table is not the run's"
    zoo_table = markdown_table_rows(readme, "| name | test figure")
    assert sorted(row[0] for row in zoo_table) == zoo.names()
    float_ms = {row["name"]: row["ms_per_image"]["tflite"] for row in run}
    for row in zoo_table:
        card_ms = zoo.card(row[0])["litert_ms_per_image"]
        assert card_ms == zoo_latency.card_milliseconds(float_ms[row[0]]), row[0]
        assert row[-1] == f"{card_ms:g}", row[0]


def test_the_readme_states_the_clone_size():
    import re

    text = open(os.path.join(REPO, "README.md")).read()
    assert re.search(r"\*\*\d+(\.\d+)? MiB\*\* of `\.git`", text)
    assert "git count-objects -vH" in text
