"""Settings for every test run (`make test`, plain `pytest`, and the nbval notebook kernels).

The notebook kernels inherit this process's environment, so setting the variables here makes
every notebook under nbval train in the `smoke` profile (seconds) and without progress bars.
"""

import os

os.environ.setdefault("RESNET_COURSE_PROFILE", "smoke")
os.environ.setdefault("RESNET_COURSE_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")
