"""python -m harness.memory refresh-configs [NAME ...]"""
import sys

from harness.memory.configs import refresh_shipped_configs

if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "refresh-configs":
        refresh_shipped_configs(sys.argv[2:] or None)
    else:
        print("usage: python -m harness.memory refresh-configs [NAME ...]")
        sys.exit(2)
