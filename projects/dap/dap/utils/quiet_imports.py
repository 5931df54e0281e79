"""Silence one known, harmless import warning before anything imports it.

tools/install.sh installs torchvision 0.16.2 for the Python modules that
mmpretrain imports; its optional image extension cannot load beside CPU
torch 2.13 and nothing in DAP uses it, so its import-time warning is noise
in every tool's output.
"""
import warnings

warnings.filterwarnings(
    'ignore', message='Failed to load image Python extension')
