"""Height of a report page in headless Chromium at a given width (issue 14: 47,600 px at 1,400 px).

    python benchmarks/bench_report_height.py runs/demo/report/report.html [more.html ...]
    python benchmarks/bench_report_height.py --width 1400 old.html new.html   # before / after

Prints, per page: the document height in CSS pixels, the height of the first screen's
content up to the first results table, the file size, and the machine load. Needs Debian's
``chromium`` (``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from chromium import CHROMIUM, Chromium  # noqa: E402

#: Top of the first results table on the page (None if the page has none).
_FIRST_TABLE_TOP = (
    "(() => { const t = document.querySelector('table.results') || document.querySelector('table');"
    " return t ? Math.round(t.getBoundingClientRect().top + window.scrollY) : null; })()"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pages", nargs="+", type=Path, help="report.html files")
    parser.add_argument("--width", type=int, default=1400, help="window width in CSS pixels (default 1400)")
    args = parser.parse_args()
    if CHROMIUM is None:
        sys.exit("chromium not found (apt-get install -y chromium)")
    print(f"load average {os.getloadavg()[0]:.2f} (1 min); width {args.width} px")
    browser = Chromium(CHROMIUM, width=args.width, height=900)
    try:
        for page in args.pages:
            browser.open(page.resolve().as_uri())
            height = browser.page_height()
            first_table = browser.evaluate(_FIRST_TABLE_TOP)
            print(f"{page}: height {height:,} px; first table at {first_table} px; "
                  f"{page.stat().st_size / 1e6:.2f} MB")
    finally:
        browser.close()


if __name__ == "__main__":
    main()
