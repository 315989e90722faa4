"""`import jvla` (and the light modules) must not import torch or transformers."""

import subprocess
import sys


def test_import_jvla_is_light():
    code = (
        "import sys, jvla, jvla.config, jvla.actions, jvla.action_tokenizer, jvla.paths;"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'minestudio', 'datasets') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported by `import jvla`: {out.stdout.strip()}"
