"""Offline stand-in for pip's get-pip.py (ansible-test bootstraps pip with it): ensurepip, then pip install."""
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *args])
