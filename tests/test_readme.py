import os
import re

from tests.conftest import REPO


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    with open(os.path.join(REPO, "README.md")) as file:
        blocks = re.findall(r"```bash\n(.*?)\n```", file.read(), re.S)
    install_and_run, install_and_test = blocks[0], blocks[1]
    assert "quickstart" in install_and_run and "pip install -r requirements.txt" in install_and_run
    with open(os.path.join(REPO, ".ci", "run")) as file:
        ci = file.read()
    assert install_and_test.replace("pip install", "pip install -q") in ci
