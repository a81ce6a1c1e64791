import sys
from pathlib import Path

# The harness modules are imported as `bench.*`, from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
