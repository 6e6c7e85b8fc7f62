"""A fake ``adb`` for running the real PhoneAgent loop offline (stdlib only: it starts fast).

State lives in the folder named by ``FAKE_ADB_STATE``:
  screens/NNN.png   real PNG screenshots; the k-th screencap serves screens/<k mod count>.png
  current           the focused package (updated by ``shell monkey -p PKG``)
  calls.jsonl       one JSON list per invocation (the argv after ``adb``), for assertions
  mode              optional: ``sensitive`` (screencap prints Status: -1) or ``no-dumpsys``
"""

import json
import os
import shutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    state = Path(os.environ["FAKE_ADB_STATE"])
    with (state / "calls.jsonl").open("a", encoding="utf-8") as log:
        log.write(json.dumps(argv) + "\n")
    if len(argv) >= 2 and argv[0] == "-s":
        argv = argv[2:]
    mode = (state / "mode").read_text().strip() if (state / "mode").exists() else ""
    if argv[:2] == ["shell", "screencap"]:
        return screencap(state, mode)
    if argv[:1] == ["pull"] and len(argv) >= 3:
        shutil.copyfile(state / "sdcard_tmp.png", argv[2])
        return 0
    if argv[:3] == ["shell", "dumpsys", "window"]:
        if mode != "no-dumpsys":
            pkg = (state / "current").read_text().strip()
            print(f"  mCurrentFocus=Window{{1a2b3c u0 {pkg}/{pkg}.MainActivity}}")
        return 0
    if argv[:2] == ["shell", "monkey"] and "-p" in argv:
        (state / "current").write_text(argv[argv.index("-p") + 1])
        print("Events injected: 1")
        return 0
    if argv[:5] == ["shell", "settings", "get", "secure", "default_input_method"]:
        print("com.android.inputmethod.latin/.LatinIME")
        return 0
    return 0  # input tap/swipe/keyevent, ime set, am broadcast: nothing to answer


def screencap(state: Path, mode: str) -> int:
    if mode == "sensitive":
        print("Status: -1")
        return 0
    screens = sorted((state / "screens").glob("*.png"))
    counter = state / "screencap_count"
    count = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(count + 1))
    shutil.copyfile(screens[count % len(screens)], state / "sdcard_tmp.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
