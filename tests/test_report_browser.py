"""The report as a person sees it: headless Chromium (Debian's package, installed by .ci/run) opens report.html and
every image on the page loads; a broken image is caught (the check can fail)."""
import re
import shutil
import subprocess

import numpy as np
import pytest

from utils.data.datasets import load_dataset
from utils.report.dataset_report import write_report
from utils.scores.dataset import ScoringConfig, score_dataset

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = ("<script>window.addEventListener('load', () => {const bad = [...document.images].filter("
         "i => !i.complete || i.naturalWidth === 0).length; document.body.setAttribute('data-images', "
         "document.images.length); document.body.setAttribute('data-broken', bad);});</script>")


def images_on(page) -> tuple[int, int]:
    """(images on the page, images that did not load) as headless Chromium renders ``page``."""
    probe = page.with_name(page.stem + "_probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    found = dict(re.findall(r'data-(images|broken)="(\d+)"', dom))
    assert found, f"Chromium did not render {page.name}: {dom[:300]!r}"
    return int(found["images"]), int(found["broken"])


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run does)")
def test_every_image_of_the_report_loads_in_a_browser(tmp_path):
    x, y, _ = load_dataset("mnist-5k", "test")
    x, y = x[:120].clone(), y[:120].clone()
    x[5] = 1.0                                   # a white blank and an exact copy: flagged, shown in the report
    x[7] = x[8]
    scores = score_dataset(x, y, config=ScoringConfig(k=5), families=("pixels",))
    page = write_report(scores, x.numpy(), tmp_path)
    shown, broken = images_on(page)
    assert shown >= 4 and broken == 0
    bad = tmp_path / "broken.html"
    bad.write_text(page.read_text().replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    assert images_on(bad)[1] == 1
