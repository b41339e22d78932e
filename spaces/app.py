"""chatgen on a Hugging Face Space: draw, edit and ask in one chat."""

try:  # on ZeroGPU hardware `spaces` must be imported before torch
    import spaces  # noqa: F401
except ImportError:
    pass

from pathlib import Path

from chatgen.space import launch_options, space_demo

demo = space_demo(Path(__file__).parent / "model")

if __name__ == "__main__":
    demo.launch(**launch_options())
